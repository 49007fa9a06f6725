/**
 * Binary clients and `memrep proxy -Y`: they log in with SASL PLAIN (as
 * memcached -S) against the users of the auth file; before that every
 * opcode but the SASL ones and version is refused ("Auth failure.", then
 * the connection closes). Behind the proxy, memcached -Y backends are
 * logged in to with --backend-auth, so binary writes reach them too.
 * Real clients with credentials: Dalli and memjs.
 * @module
 */

import memjs from "npm:memjs@1.3.2";
import { deepEqual, equal, ok } from "../helpers/assert.ts";
import {
  connect,
  ignoreUnless,
  startMemcached,
  startMemrep,
  type TestConn,
  writeTempFile,
} from "../helpers/mod.ts";
import { OP, packet, roundTrip, setExtras, text } from "../helpers/binary.ts";

function tempFile(contents: string): Promise<string> {
  return writeTempFile(contents, "memrep-proxy-sasl-");
}

function plain(user: string, pass: string): string {
  return `\0${user}\0${pass}`;
}

/** Send `bytes` (no noop barrier: before login a noop is refused too) and read one packet. */
async function reply(c: TestConn, bytes: Uint8Array): Promise<Uint8Array> {
  await c.send(bytes);
  return await c.readUntil((b) => {
    if (b.length < 24) return -1;
    const n = 24 + new DataView(b.buffer, b.byteOffset).getUint32(8);
    return b.length >= n ? n : -1;
  }, 5000);
}

async function status(c: TestConn, bytes: Uint8Array): Promise<[number, string]> {
  const raw = await reply(c, bytes);
  return [new DataView(raw.buffer, raw.byteOffset).getUint16(6), text(raw.subarray(24))];
}

/** The one packet answering `bytes`, and whether the connection closed after it. */
async function refused(c: TestConn, bytes: Uint8Array): Promise<[number, string, boolean]> {
  const [st, body] = await status(c, bytes);
  return [st, body, await c.waitClosed(5000)];
}

Deno.test({
  name: "proxy -Y: binary clients log in with SASL PLAIN; writes reach memcached -Y backends",
  ignore: ignoreUnless("proxy binary SASL", ["memcached"]),
  async fn() {
    const backendUsers = await tempFile("proxy:b4ckend\n");
    const clientUsers = await tempFile("app:cl1ent\nother:pw2\n");
    const primary = await startMemcached(["-Y", backendUsers]);
    const backup = await startMemcached(["-Y", backendUsers]);
    const proxy = await startMemrep([
      "proxy",
      ...["-s", `127.0.0.1:${primary.port}`, "-b", `127.0.0.1:${backup.port}`],
      ...["-Y", clientUsers, "--backend-auth", "proxy:b4ckend"],
    ]);
    try {
      // Before login: a get (or a noop) is refused and the connection closes.
      for (const op of [OP.GET, OP.NOOP]) {
        const a = await connect(proxy.port);
        const key = op === OP.GET ? "k" : "";
        deepEqual(await refused(a, packet({ op, key, opaque: 1 })), [0x20, "Auth failure.", true]);
        await a.close();
      }
      // Version and the mechanism list are open; a wrong password fails and the connection stays.
      const c = await connect(proxy.port);
      deepEqual(await status(c, packet({ op: OP.VERSION })), [0, "1.6.18"]);
      deepEqual(await status(c, packet({ op: OP.SASL_LIST })), [0, "PLAIN"]);
      deepEqual(
        await status(c, packet({ op: OP.SASL_AUTH, key: "PLAIN", value: plain("app", "nope") })),
        [0x20, "Auth failure."],
      );
      deepEqual(
        await status(c, packet({ op: OP.SASL_AUTH, key: "CRAM-MD5", value: "x" })),
        [0x20, "Auth failure."],
      );
      // PLAIN in two steps: auth without data asks for it (0x21), step sends it.
      deepEqual(await status(c, packet({ op: OP.SASL_AUTH, key: "PLAIN" })), [0x21, ""]);
      deepEqual(
        await status(c, packet({ op: OP.SASL_STEP, key: "PLAIN", value: plain("app", "cl1ent") })),
        [0, "Authenticated"],
      );
      const set = await roundTrip(
        c,
        packet({ op: OP.SET, key: "k", value: "v1", extras: setExtras(5, 0) }),
      );
      equal(set[0].status, 0);
      const got = await roundTrip(c, packet({ op: OP.GETK, key: "k" }));
      deepEqual([got[0].status, text(got[0].key), text(got[0].value)], [0, "k", "v1"]);
      // The backends (memcached -Y) hold it: read them with their own login.
      for (const b of [primary, backup]) {
        const d = await connect(b.port);
        equal(await d.request("set auth 0 0 13\r\nproxy b4ckend"), "STORED\r\n");
        let value = "";
        for (let i = 0; i < 100 && value === ""; i++) {
          value = await d.request("get k", "END\r\n");
          if (value === "END\r\n") {
            value = "";
            await new Promise((r) => setTimeout(r, 50));
          }
        }
        equal(value, "VALUE k 5 2\r\nv1\r\nEND\r\n");
        await d.close();
      }
      const stats = await roundTrip(c, packet({ op: OP.STAT, key: "proxy" }));
      const stat = (n: string) =>
        text(stats.find((r) => text(r.key) === n)?.value ?? new Uint8Array());
      deepEqual([stat("auth_cmds"), stat("auth_errors")], ["3", "2"]);
      await c.close();
      // One line login in one packet, as clients send it; a text client still logs in as before.
      const d = await connect(proxy.port);
      deepEqual(
        await status(d, packet({ op: OP.SASL_AUTH, key: "PLAIN", value: plain("other", "pw2") })),
        [0, "Authenticated"],
      );
      await d.close();
      const t = await connect(proxy.port);
      equal(await t.request("get k"), "CLIENT_ERROR unauthenticated\r\n");
      await t.close();
    } finally {
      await proxy.stop();
      await primary.stop();
      await backup.stop();
      await Deno.remove(backendUsers);
      await Deno.remove(clientUsers);
    }
  },
});

const DALLI_SCRIPT = `
require "dalli"
dc = Dalli::Client.new("127.0.0.1:#{ENV["PORT"]}", socket_timeout: 3,
  username: ENV["USER_NAME"], password: ENV["PASSWORD"])
raise "set" unless dc.set("rb:a", "alpha", 100, raw: true)
raise "get" unless dc.get("rb:a") == "alpha"
m = dc.get_multi("rb:a", "rb:none")
raise "multi #{m}" unless m == { "rb:a" => "alpha" }
puts "ok"
`;

const CLIENTS = "proxy -Y: Dalli and memjs log in with their credentials (SASL PLAIN)";
Deno.test({
  name: CLIENTS,
  ignore: ignoreUnless(CLIENTS, ["memcached", "ruby"]),
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const users = await tempFile("app:cl1ent\n");
    const primary = await startMemcached();
    const proxy = await startMemrep(["proxy", "-s", `127.0.0.1:${primary.port}`, "-Y", users]);
    try {
      const out = await new Deno.Command("ruby", {
        args: ["-e", DALLI_SCRIPT],
        env: { PORT: String(proxy.port), USER_NAME: "app", PASSWORD: "cl1ent" },
        stdout: "piped",
        stderr: "piped",
      }).output();
      const dec = new TextDecoder();
      // Dalli logs its SASL steps to stdout: the script's own word is the last line.
      const last = (b: Uint8Array) => dec.decode(b).trim().split("\n").at(-1);
      equal(last(out.stdout), "ok", dec.decode(out.stdout) + dec.decode(out.stderr));
      const wrong = await new Deno.Command("ruby", {
        args: ["-e", DALLI_SCRIPT],
        env: { PORT: String(proxy.port), USER_NAME: "app", PASSWORD: "bad" },
        stdout: "piped",
        stderr: "piped",
      }).output();
      ok(last(wrong.stdout) !== "ok", "Dalli with a wrong password gets nothing");
      const client = memjs.Client.create(`app:cl1ent@127.0.0.1:${proxy.port}`, {
        timeout: 3,
        retries: 0,
      });
      try {
        ok(await client.set("js:a", "alpha", {}));
        equal((await client.get("js:a")).value?.toString(), "alpha");
        equal((await client.get("rb:a")).value?.toString(), "alpha");
      } finally {
        client.close();
      }
    } finally {
      await proxy.stop();
      await primary.stop();
      await Deno.remove(users);
    }
  },
});

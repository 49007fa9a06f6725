/**
 * `memrep replicate` against servers that want a login (-Y) or TLS (-Z):
 * memcached as the source, memrep serve as the target, every item copied
 * with `--auth` / `--tls-ca`; without them, or with a wrong password, the
 * copy fails (exit 1) and says which server refused.
 * @module
 */

import { equal, match, ok } from "../helpers/assert.ts";
import {
  connect,
  connectTls,
  ignoreUnless,
  runMemrep,
  startMemcached,
  startMemrep,
  type TestConn,
} from "../helpers/mod.ts";
import { makeCerts } from "../helpers/tls.ts";
import { addr, copy } from "./run.ts";

const ITEMS = 300;

async function login(c: TestConn, user: string, pass: string): Promise<void> {
  const token = `${user} ${pass}`;
  equal(await c.request(`set auth 0 0 ${token.length}\r\n${token}\r\n`), "STORED\r\n");
}

/** Sets ITEMS items on `c` (flags i, no TTL). */
async function fillOn(c: TestConn): Promise<void> {
  let batch = "";
  for (let i = 0; i < ITEMS; i++) batch += `set k:${i} ${i} 0 ${String(i).length}\r\n${i}\r\n`;
  await c.send(batch);
  for (let i = 0; i < ITEMS; i++) equal(await c.readLine(), "STORED");
}

/** Every item's `flags value` on `c`, or a miss. */
async function check(c: TestConn): Promise<number> {
  let found = 0;
  for (let i = 0; i < ITEMS; i++) {
    const r = await c.request(`get k:${i}`, "END\r\n");
    if (r === `VALUE k:${i} ${i} ${String(i).length}\r\n${i}\r\nEND\r\n`) found++;
  }
  return found;
}

Deno.test({
  name: "replicate --auth copies from memcached -Y to serve -Y; no login or a wrong one fails",
  ignore: ignoreUnless("replicate --auth", ["memcached"]),
  async fn() {
    const path = await Deno.makeTempFile({ prefix: "memrep-auth-" });
    await Deno.writeTextFile(path, "copier:s3cret\n");
    const src = await startMemcached(["-Y", path]);
    const dst = await startMemrep(["serve", "-Y", path]);
    const a = await connect(src.port), b = await connect(dst.port);
    try {
      await login(a, "copier", "s3cret");
      await fillOn(a);
      // No login: the source refuses the listing.
      const none = await copy(["--from", addr(src.port), "--to", addr(dst.port)], async () => {});
      equal(none.code, 1, none.out);
      match(none.out, new RegExp(`127\\.0\\.0\\.1:${src.port}`));
      // A wrong password: the login is refused, named.
      const wrong = await copy(
        ["--from", addr(src.port), "--to", addr(dst.port), "--auth", "copier:nope"],
        async () => {},
      );
      equal(wrong.code, 1, wrong.out);
      match(wrong.out, /login as copier refused/);
      await login(b, "copier", "s3cret");
      equal(await check(b), 0, "nothing reached the target before the right login");
      const file = await Deno.makeTempFile({ prefix: "memrep-login-" });
      await Deno.writeTextFile(file, "copier:s3cret\nother:x\n");
      const run = await copy(
        ["--from", addr(src.port), "--to", addr(dst.port), "--auth-file", file],
        async () => {},
      );
      await Deno.remove(file);
      equal(run.code, 0, run.out);
      equal(run.summary.copied, ITEMS, run.out);
      equal(await check(b), ITEMS);
    } finally {
      await a.close();
      await b.close();
      await src.stop();
      await dst.stop();
      await Deno.remove(path);
    }
  },
});

Deno.test("replicate: --auth and --auth-file together, or a token with a space, exit 2", async () => {
  for (
    const args of [
      ["--auth", "a:b", "--auth-file", "/dev/null"],
      ["--auth", "a b:c"],
      ["--auth", "nocolon"],
      ["--tls-ca", "/nonexistent/ca.pem"],
    ]
  ) {
    const r = await runMemrep([
      "replicate",
      "--from",
      "127.0.0.1:1",
      "--dump",
      "/dev/null",
      ...args,
    ]);
    equal(r.code, 2, `${args.join(" ")}: ${r.stderr}`);
    ok(r.stderr.includes("--auth") || r.stderr.includes("--tls-ca"), r.stderr);
  }
});

Deno.test({
  name: "replicate --tls-ca copies from memcached -Z to serve -Z; without --tls it fails",
  ignore: ignoreUnless("replicate --tls", ["memcached", "openssl"]),
  async fn() {
    const certs = await makeCerts();
    const tls = ["-Z", "-o", `ssl_chain_cert=${certs.cert},ssl_key=${certs.key}`];
    const src = await startMemcached(tls);
    const dst = await startMemrep(["serve", ...tls]);
    try {
      const a = await connectTls(src.port, certs.caPem);
      try {
        await fillOn(a);
      } finally {
        await a.close();
      }
      const plain = await copy(
        ["--from", addr(src.port), "--to", addr(dst.port), "--timeout", "2000"],
        async () => {},
      );
      equal(plain.code, 1, plain.out);
      const run = await copy(
        ["--from", addr(src.port), "--to", addr(dst.port), "--tls-ca", certs.ca],
        async () => {},
      );
      equal(run.code, 0, run.out);
      equal(run.summary.copied, ITEMS, run.out);
      const b = await connectTls(dst.port, certs.caPem);
      try {
        equal(await check(b), ITEMS);
      } finally {
        await b.close();
      }
    } finally {
      await src.stop();
      await dst.stop();
      await Deno.remove(certs.dir, { recursive: true });
    }
  },
});

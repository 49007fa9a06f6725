/**
 * Real binary clients log in to `memrep serve -S` with SASL PLAIN, users in
 * a MEMCACHED_SASL_PWDB file: memjs (npm), pylibmc (binary=True) and ruby
 * Dalli with the right password store and read; with a wrong password or
 * none they are refused, and what they tried to write is not stored (read
 * back over a logged-in raw connection). With one thread and with two, and
 * on a replicated pair with -S on both nodes.
 */

import memjs from "npm:memjs@1.3.2";
import { OP, packet, roundTrip, text } from "../helpers/binary.ts";
import {
  connect,
  deepEqual,
  equal,
  eventually,
  freePort,
  haveBinary,
  type ProcessHandle,
  startMemrep,
  type TestConn,
} from "../helpers/mod.ts";
import { startNode } from "../replication/pair.ts";

const USER = "app", PASS = "cl1ent";

async function pwdbFile(): Promise<string> {
  const path = await Deno.makeTempFile({ prefix: "memrep-sasl-pwdb-" });
  await Deno.writeTextFile(path, `other:x\n${USER}:${PASS}\n`);
  return path;
}

/** A raw binary connection logged in with SASL PLAIN. */
async function loggedIn(port: number): Promise<TestConn> {
  const c = await connect(port);
  const r = await roundTrip(
    c,
    packet({ op: OP.SASL_AUTH, key: "PLAIN", value: `\0${USER}\0${PASS}`, opaque: 1 }),
  );
  equal(r.length, 1);
  equal(r[0].status, 0, `login: ${text(r[0].value)}`);
  return c;
}

/** key -> value (null when missing) over a logged-in connection. */
async function values(c: TestConn, keys: string[]): Promise<Record<string, string | null>> {
  const out: Record<string, string | null> = {};
  for (const key of keys) {
    const r = await roundTrip(c, packet({ op: OP.GET, key }));
    out[key] = r.length === 1 && r[0].status === 0 ? text(r[0].value) : null;
  }
  return out;
}

function randomTag(): string {
  return crypto.randomUUID().slice(0, 8);
}

async function run(cmd: string, args: string[], env: Record<string, string>): Promise<string> {
  const out = await new Deno.Command(cmd, { args, env, stdout: "piped", stderr: "piped" })
    .output();
  const dec = new TextDecoder();
  // The script's own word is its last stdout line (Dalli logs there too).
  const last = dec.decode(out.stdout).trim().split("\n").at(-1) ?? "";
  if (!last.startsWith("{")) {
    throw new Error(`${cmd}: ${dec.decode(out.stdout)}${dec.decode(out.stderr)}`);
  }
  return last;
}

/** Each attempt: a new client (a new connection) that sets `key` to "v-<key>" and reads it. */
type Outcomes = { right: string[]; wrong: string; none: string };

const PYLIBMC_SCRIPT = `
import os, json, pylibmc
port, pre = os.environ["PORT"], os.environ["PREFIX"]
def attempt(user, pw, key):
    kw = {} if user is None else {"username": user, "password": pw}
    try:
        mc = pylibmc.Client(["127.0.0.1:" + port], binary=True, **kw)
        ok = mc.set(key, "v-" + key)
        got = mc.get(key)
        mc.disconnect_all()
        return "stored" if ok and got == "v-" + key else "not stored"
    except Exception as e:
        return "refused"
print(json.dumps({
    "right": [attempt("${USER}", "${PASS}", pre + ":right%d" % i) for i in range(4)],
    "wrong": attempt("${USER}", "bad", pre + ":wrong"),
    "none": attempt(None, None, pre + ":none"),
}))
`;

const DALLI_SCRIPT = `
require "dalli"
require "json"
require "logger"
Dalli.logger = Logger.new(nil)
def attempt(user, pw, key)
  opts = { socket_timeout: 2, socket_max_failures: 1 }
  opts.merge!(username: user, password: pw) if user
  dc = Dalli::Client.new("127.0.0.1:#{ENV["PORT"]}", **opts)
  ok = dc.set(key, "v-#{key}", 0, raw: true)
  got = dc.get(key)
  dc.close
  ok && got == "v-#{key}" ? "stored" : "not stored"
rescue StandardError
  "refused"
end
pre = ENV["PREFIX"]
puts JSON.generate({
  right: (0...4).map { |i| attempt("${USER}", "${PASS}", "#{pre}:right#{i}") },
  wrong: attempt("${USER}", "bad", "#{pre}:wrong"),
  none: attempt(nil, nil, "#{pre}:none"),
})
`;

async function memjsAttempt(port: number, creds: string, key: string): Promise<string> {
  const client = memjs.Client.create(`${creds}127.0.0.1:${port}`, {
    timeout: 2,
    retries: 0,
    logger: { log: () => {} },
  });
  try {
    const ok = await client.set(key, `v-${key}`, {});
    const got = (await client.get(key)).value?.toString();
    return ok && got === `v-${key}` ? "stored" : "not stored";
  } catch {
    return "refused";
  } finally {
    client.close();
  }
}

async function memjsOutcomes(port: number, pre: string): Promise<Outcomes> {
  return {
    right: await Promise.all(
      [0, 1, 2, 3].map((i) => memjsAttempt(port, `${USER}:${PASS}@`, `${pre}:right${i}`)),
    ),
    wrong: await memjsAttempt(port, `${USER}:bad@`, `${pre}:wrong`),
    none: await memjsAttempt(port, "", `${pre}:none`),
  };
}

/** Each client's outcomes, then what the server holds for the keys it tried. */
async function checkClients(port: number): Promise<void> {
  const tag = randomTag();
  const clients: Array<[string, (pre: string) => Promise<Outcomes>]> = [
    ["memjs", (pre) => memjsOutcomes(port, pre)],
  ];
  if (haveBinary("ruby")) {
    clients.push(["dalli", async (pre) =>
      JSON.parse(
        await run("ruby", ["-e", DALLI_SCRIPT], { PORT: String(port), PREFIX: pre }),
      )]);
  }
  clients.push(["pylibmc", async (pre) =>
    JSON.parse(
      await run("/usr/bin/python3", ["-c", PYLIBMC_SCRIPT], { PORT: String(port), PREFIX: pre }),
    )]);
  const c = await loggedIn(port);
  try {
    for (const [name, attempts] of clients) {
      const pre = `${tag}:${name}`;
      const got = await attempts(pre);
      deepEqual(
        got,
        { right: ["stored", "stored", "stored", "stored"], wrong: "refused", none: "refused" },
        `${name} outcomes`,
      );
      const keys = [0, 1, 2, 3].map((i) => `${pre}:right${i}`);
      const held = await values(c, [...keys, `${pre}:wrong`, `${pre}:none`]);
      const want: Record<string, string | null> = {};
      for (const k of keys) want[k] = `v-${k}`;
      want[`${pre}:wrong`] = null;
      want[`${pre}:none`] = null;
      deepEqual(held, want, `${name}: stored keys`);
    }
  } finally {
    await c.close();
  }
}

/** 12 logins on their own connections (spread over the threads), every third one wrong. */
async function checkCounters(port: number): Promise<void> {
  const stat = async (c: TestConn) => {
    const r = await roundTrip(c, packet({ op: OP.STAT }));
    const get = (k: string) =>
      Number(text(r.find((x) => text(x.key) === k)?.value ?? new Uint8Array(0)));
    return { cmds: get("auth_cmds"), errors: get("auth_errors") };
  };
  const c = await loggedIn(port);
  try {
    const before = await stat(c);
    const statuses = await Promise.all(Array.from({ length: 12 }, async (_, i) => {
      const conn = await connect(port);
      try {
        const pass = i % 3 === 0 ? "wrong" : PASS;
        const r = await roundTrip(
          conn,
          packet({ op: OP.SASL_AUTH, key: "PLAIN", value: `\0${USER}\0${pass}` }),
        );
        return r[0]?.status;
      } finally {
        await conn.close();
      }
    }));
    deepEqual(statuses, Array.from({ length: 12 }, (_, i) => i % 3 === 0 ? 0x20 : 0));
    deepEqual(await stat(c), { cmds: before.cmds + 12, errors: before.errors + 4 });
  } finally {
    await c.close();
  }
}

for (const threads of [1, 2]) {
  Deno.test({
    name:
      `serve -S -t ${threads}: memjs, pylibmc and Dalli log in with SASL PLAIN; wrong or no credentials are refused; auth counters`,
    // memjs closes its sockets asynchronously.
    sanitizeOps: false,
    sanitizeResources: false,
    async fn() {
      const pwdb = await pwdbFile();
      let server: ProcessHandle | undefined;
      try {
        server = await startMemrep(["serve", "-S", "-t", String(threads)], {
          env: { MEMCACHED_SASL_PWDB: pwdb },
        });
        await checkClients(server.port);
        await checkCounters(server.port);
      } finally {
        await server?.stop();
        await Deno.remove(pwdb);
      }
    },
  });
}

Deno.test({
  name: "serve -S replicated pair: binary writes of logged-in clients on A are on B",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const pwdb = await pwdbFile();
    const env = { MEMCACHED_SASL_PWDB: pwdb };
    const replPort = freePort();
    const a = await startNode(replPort, ["-S", "-t", "2"], undefined, env);
    const b = await startNode(replPort, ["-S", "-t", "1"], undefined, env);
    try {
      await Promise.all([
        a.proc.waitForLog(/^replication: start/, 10_000),
        b.proc.waitForLog(/^replication: start/, 10_000),
      ]);
      const tag = randomTag();
      const keys = Array.from({ length: 40 }, (_, i) => `${tag}:r${i}`);
      const want: Record<string, string | null> = {};
      const client = memjs.Client.create(`${USER}:${PASS}@127.0.0.1:${a.port}`, {
        timeout: 3,
        retries: 0,
      });
      try {
        await Promise.all(keys.map(async (k) => {
          const v = `${k}=${Math.random()}`;
          want[k] = v;
          equal(await client.set(k, v, {}), true, `set ${k}`);
        }));
      } finally {
        client.close();
      }
      // Refused on A: never on B either.
      equal(await memjsAttempt(a.port, "", `${tag}:refused`), "refused");
      want[`${tag}:refused`] = null;
      const cb = await loggedIn(b.port);
      try {
        await eventually(() => values(cb, Object.keys(want)), want, "B holds A's writes", 15_000);
      } finally {
        await cb.close();
      }
    } finally {
      await b.proc.stop();
      await a.proc.stop();
      await Deno.remove(pwdb);
    }
  },
});

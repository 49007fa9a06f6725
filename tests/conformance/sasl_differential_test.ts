/**
 * Binary SASL differential conformance: the same packets go to real
 * memcached 1.6.18 `-S` (Cyrus SASL, PLAIN, users in a sasldb made with
 * saslpasswd2) and to `memrep serve -S` (users in a MEMCACHED_SASL_PWDB
 * file); the rendered response packets and closes must be identical.
 * Before login the noop barrier cannot be used (it is refused too): such
 * steps read until the connection is quiet or closed.
 * Env: `DIFF_FILTER=<regex>`, `DIFF_SHOW=1`.
 */

import { OP, packet, type PacketSpec, setExtras } from "../helpers/binary.ts";
import {
  equal,
  ignoreUnless,
  mulberry32,
  type ProcessHandle,
  startMemcached,
  startMemrep,
} from "../helpers/mod.ts";
import { type BinCase, type BinStep, runBinCase, stepDiffs } from "./binary_differential.ts";

let nextOpaque = 0x5a000;
function p(spec: PacketSpec): Uint8Array {
  return packet({ opaque: nextOpaque++, ...spec });
}

function cat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((a, b) => a + b.length, 0));
  let o = 0;
  for (const x of parts) {
    out.set(x, o);
    o += x.length;
  }
  return out;
}

const USER = "alice", PASS = "secret";
/** The same users for both servers. */
const USERS = [[USER, PASS], ["bob", "pw2"]];

/** An RFC 4616 PLAIN message: authzid NUL authcid NUL password. */
function plain(user = USER, pass = PASS, authzid = ""): string {
  return `${authzid}\0${user}\0${pass}`;
}
function BAD_MAGIC() {
  return p({ op: OP.VERSION, magic: 0x81 });
}
function list() {
  return p({ op: OP.SASL_LIST });
}
const auth = (value = plain(), mech = "PLAIN") => p({ op: OP.SASL_AUTH, key: mech, value });
const step = (value = plain(), mech = "PLAIN") => p({ op: OP.SASL_STEP, key: mech, value });
function set(key: string, value: string) {
  return p({ op: OP.SET, key, value, extras: setExtras(7, 0) });
}
function get(key: string) {
  return p({ op: OP.GET, key });
}

/** A step before login: a version request (answered then too) ends it. */
function idle(send: Uint8Array): BinStep {
  return { send, barrier: OP.VERSION };
}
/** The server must close after its reply. */
function closes(send: Uint8Array): BinStep {
  return { send, mode: "close" };
}

const CASES: BinCase[] = [
  { name: "list mechs", steps: [idle(list())] },
  { name: "version before login", steps: [{ send: p({ op: OP.VERSION }), mode: "idle" }] },
  { name: "get before login: auth failure, close", steps: [closes(get("k"))] },
  { name: "set before login: auth failure, close", steps: [closes(set("k", "v"))] },
  {
    name: "set header and key only before login",
    steps: [
      closes(p({ op: OP.SET, key: "k", extras: setExtras(0, 0), bodylen: 1000 }).subarray(0, 33)),
    ],
  },
  { name: "noop before login", steps: [closes(p({ op: OP.NOOP }))] },
  { name: "quiet get before login", steps: [closes(p({ op: OP.GETQ, key: "k" }))] },
  { name: "stat before login", steps: [closes(p({ op: OP.STAT }))] },
  { name: "quit before login", steps: [closes(p({ op: OP.QUIT }))] },
  { name: "unknown opcode before login", steps: [closes(p({ op: 0x50 }))] },
  { name: "key over 250 bytes before login", steps: [closes(get("k".repeat(251)))] },
  {
    name: "keylen over bodylen before login",
    steps: [
      closes(p({ op: OP.GET, key: "abc", bodylen: 2 })),
    ],
  },
  {
    name: "replies queued before a refusal are sent",
    steps: [
      closes(cat(p({ op: OP.VERSION }), list(), get("k"))),
    ],
  },
  {
    name: "login, then set and get",
    steps: [
      idle(auth()),
      set("s1", "hello"),
      get("s1"),
      p({ op: OP.GETK, key: "s1" }),
    ],
  },
  {
    name: "login and commands in one write",
    steps: [
      cat(auth(), set("s2", "pipelined"), get("s2")),
    ],
  },
  {
    name: "wrong password: auth failure, connection stays",
    steps: [
      idle(auth(plain(USER, "wrong"))),
      idle(p({ op: OP.VERSION })),
      closes(get("k")),
    ],
  },
  {
    name: "wrong then right password",
    steps: [
      idle(auth(plain(USER, "secreT"))),
      idle(auth()),
      get("s3"),
    ],
  },
  { name: "unknown user", steps: [idle(auth(plain("mallory", PASS))), closes(get("k"))] },
  { name: "authzid equal to the user", steps: [idle(auth(plain(USER, PASS, USER))), get("k")] },
  { name: "authzid of another user", steps: [idle(auth(plain(USER, PASS, "bob")))] },
  { name: "empty user", steps: [idle(auth(plain("", PASS)))] },
  { name: "empty password", steps: [idle(auth(plain(USER, "")))] },
  { name: "no NUL in the message", steps: [idle(auth(`${USER}${PASS}`))] },
  { name: "one NUL in the message", steps: [idle(auth(`${USER}\0${PASS}`))] },
  { name: "mechanism in lower case", steps: [idle(auth(plain(), "plain")), get("k")] },
  { name: "unknown mechanism", steps: [idle(auth(plain(), "CRAM-MD5")), idle(auth())] },
  {
    name: "PLAIN without data, then step",
    steps: [
      idle(auth("")),
      idle(step()),
      get("k"),
    ],
  },
  {
    name: "PLAIN without data, then a wrong step, then a right one",
    steps: [
      idle(auth("")),
      idle(step(plain(USER, "nope"))),
      idle(step()),
    ],
  },
  { name: "step without auth", steps: [idle(step()), closes(get("k"))] },
  { name: "step after a login", steps: [idle(auth()), idle(step()), closes(get("k"))] },
  { name: "list mechs ends a login", steps: [idle(auth()), idle(list()), closes(get("k"))] },
  {
    name: "auth failure ends a login",
    steps: [
      idle(auth()),
      idle(auth(plain(USER, "x"))),
      closes(get("k")),
    ],
  },
  {
    name: "list mechs with a body: invalid, close",
    steps: [
      closes(p({ op: OP.SASL_LIST, value: "x" })),
    ],
  },
  {
    name: "list mechs with a key: invalid, close",
    steps: [
      closes(p({ op: OP.SASL_LIST, key: "PLAIN" })),
    ],
  },
  {
    name: "auth with extras: invalid, close",
    steps: [
      closes(p({ op: OP.SASL_AUTH, key: "PLAIN", extras: new Uint8Array(4), value: plain() })),
    ],
  },
  {
    name: "auth with an empty key: invalid, close",
    steps: [
      closes(p({ op: OP.SASL_AUTH, value: plain() })),
    ],
  },
  {
    name: "step with an empty key: invalid, close",
    steps: [
      closes(p({ op: OP.SASL_STEP, value: plain() })),
    ],
  },
  {
    name: "mechanism of 33 bytes: invalid, connection stays",
    steps: [
      idle(auth(plain(), "P".repeat(33))),
      idle(auth()),
      get("k"),
    ],
  },
  { name: "mechanism of 32 bytes: auth failure", steps: [idle(auth(plain(), "P".repeat(32)))] },
  {
    name: "mechanism of 251 bytes: invalid, close",
    steps: [
      closes(auth(plain(), "P".repeat(251))),
    ],
  },
  {
    name: "auth sent in pieces",
    steps: [{ send: auth(), barrier: OP.VERSION, chunk: 5 }, get("k")],
  },
  {
    name: "bad magic before login: close",
    steps: [
      closes(p({ op: OP.SASL_LIST, magic: 0x81 })),
    ],
  },
  {
    name: "data that just fits memcached's SASL item",
    steps: [
      idle(auth(plain() + "x".repeat(524224 - plain().length))),
    ],
  },
  {
    name: "data one byte over memcached's SASL item: out of memory, stays",
    steps: [
      idle(auth(plain() + "x".repeat(524225 - plain().length))),
      idle(auth()),
    ],
  },
  {
    name: "step data over the SASL item",
    steps: [
      idle(auth("")),
      idle(step(plain() + "x".repeat(600000))),
      idle(step()),
    ],
  },
  {
    name: "data of 2 MB: out of memory, skipped",
    steps: [
      idle(auth("x".repeat(2 << 20))),
      idle(auth()),
      get("k"),
    ],
  },
  {
    name: "mechanism of 33 bytes with 2 MB of data: invalid, skipped",
    steps: [
      idle(auth("x".repeat(2 << 20), "P".repeat(33))),
    ],
  },
  {
    name: "bad magic after a login in the same write: the reply is lost",
    steps: [
      closes(cat(auth(), p({ op: OP.VERSION, magic: 0x81 }))),
    ],
  },
  {
    name: "bad magic after an auth failure in the same write",
    steps: [
      closes(cat(auth(plain(USER, "x")), p({ op: OP.VERSION, magic: 0x81 }))),
    ],
  },
  {
    name: "bad magic after list mechs in the same write",
    steps: [
      closes(cat(list(), p({ op: OP.VERSION, magic: 0x81 }))),
    ],
  },
  {
    name: "bad magic after auth continue in the same write",
    steps: [
      closes(cat(auth(""), p({ op: OP.VERSION, magic: 0x81 }))),
    ],
  },
  { name: "auth, step and get in one write", steps: [cat(auth(""), step(), get("k"))] },
  {
    name: "bad magic after a long mechanism with data: the reply is lost",
    steps: [
      closes(cat(auth(plain(), "P".repeat(40)), BAD_MAGIC())),
    ],
  },
  {
    name: "bad magic after a long mechanism without data: the reply is lost",
    steps: [
      closes(cat(auth("", "P".repeat(40)), BAD_MAGIC())),
    ],
  },
  {
    name: "bad magic after 600 KB out of memory: the reply was sent",
    steps: [
      closes(cat(auth("x".repeat(600000)), BAD_MAGIC())),
    ],
  },
  {
    name: "bad magic after 2 MB out of memory: the reply was sent",
    steps: [
      closes(cat(auth("x".repeat(2 << 20)), BAD_MAGIC())),
    ],
  },
  {
    name: "bad magic after a long mechanism with 2 MB: the reply was sent",
    steps: [
      closes(cat(auth("x".repeat(2 << 20), "P".repeat(40)), BAD_MAGIC())),
    ],
  },
  {
    name: "login then quiet commands",
    steps: [
      idle(auth()),
      cat(p({ op: OP.SETQ, key: "s4", value: "q", extras: setExtras(1, 0) }), get("s4")),
    ],
  },
  {
    name: "second login on a connection fails, a third works (Cyrus)",
    steps: [
      idle(auth()),
      idle(auth()),
      idle(auth()),
      get("k"),
    ],
  },
  {
    name: "login of another user after a login fails",
    steps: [
      idle(auth()),
      idle(auth(plain("bob", "pw2"))),
      idle(auth(plain("bob", "pw2"))),
    ],
  },
  {
    name: "after a login, auth without data then step fails",
    steps: [
      idle(auth()),
      idle(auth("")),
      idle(step()),
      idle(step()),
      idle(auth()),
    ],
  },
  {
    name: "after a login, an unknown mechanism clears the failure to come",
    steps: [
      idle(auth()),
      idle(auth(plain(), "CRAM-MD5")),
      idle(auth()),
    ],
  },
  {
    name: "the auth unit test's sequence on one connection",
    steps: [
      idle(cat(list(), auth(plain(USER, "wrong")), step(), auth(plain(), "CRAM-MD5"))),
      idle(cat(auth(), step(), auth("", "plain"), step(plain(USER, "bad")), step(), step())),
      idle(cat(list(), auth(""), list(), step(""), step(plain(), "XYZ"))),
    ],
  },
  {
    name: "a long mechanism keeps the login",
    steps: [
      idle(auth()),
      idle(auth(plain(), "P".repeat(40))),
      get("k"),
    ],
  },
  {
    name: "stats settings: binding protocol and sasl",
    steps: [
      idle(auth()),
      {
        send: p({ op: OP.STAT, key: "settings" }),
        statsKeys: ["binding_protocol", "auth_enabled_sasl"],
      },
    ],
  },
];

/** memcached -S with Cyrus SASL: PLAIN only, the users in a sasldb at `dir`. */
async function startReference(dir: string): Promise<ProcessHandle> {
  await Deno.writeTextFile(
    `${dir}/memcached.conf`,
    `mech_list: plain\nsasldb_path: ${dir}/sasldb2\n`,
  );
  for (const [user, pass] of USERS) {
    const cmd = new Deno.Command("saslpasswd2", {
      args: ["-p", "-a", "memcached", "-c", "-f", `${dir}/sasldb2`, user],
      stdin: "piped",
      stdout: "null",
      stderr: "piped",
    }).spawn();
    const w = cmd.stdin.getWriter();
    await w.write(new TextEncoder().encode(pass));
    await w.close();
    const st = await cmd.output();
    if (!st.success) throw new Error(`saslpasswd2: ${new TextDecoder().decode(st.stderr)}`);
  }
  return await startMemcached(["-S"], { env: { SASL_CONF_PATH: dir } });
}

/** Fragments of random SASL conversations (each one packet, fresh opaque when built). */
const FRAGMENTS: Array<(key: string) => Uint8Array> = [
  () => list(),
  () => auth(),
  () => auth(plain(USER, "wrong")),
  () => auth(""),
  () => auth(plain(), "plain"),
  () => auth(plain(), "DIGEST-MD5"),
  () => auth(plain(), "P".repeat(40)),
  () => auth(plain("bob", "pw2", "bob")),
  () => auth(`${USER}\0${PASS}`),
  () => step(),
  () => step(plain(USER, "nope")),
  () => step(""),
  () => p({ op: OP.VERSION }),
  () => p({ op: OP.SASL_STEP, key: "PLAIN" }),
  () => auth(plain() + "x".repeat(524300)),
  () => p({ op: OP.SASL_AUTH, key: "PLAIN", extras: new Uint8Array(4) }),
  // Before login these are refused and close; after it they run (a key of the case's own).
  (key) => get(key),
  (key) => set(key, "w"),
  (key) => p({ op: OP.GETQ, key }),
  () => p({ op: OP.VERSION, magic: 0x81 }),
];
/** Only when the conversation is over: refused and closed before login. */
const ENDINGS: Array<(key: string) => Uint8Array> = [
  (key) => get(key),
  () => p({ op: OP.NOOP }),
  (key) => set(key, "v"),
  () => p({ op: OP.SASL_LIST, value: "x" }),
];

/** Random conversations: writes of 1-3 packets, each write ended by a version barrier. */
function randomCases(seed: number, n: number): BinCase[] {
  const rand = mulberry32(seed);
  const index = (length: number) => Math.floor(rand() * length);
  return Array.from({ length: n }, (_, i) => {
    const key = `r${seed}_${i}`; // its own key: cases run together
    const steps: BinStep[] = [];
    const shown: string[] = []; // fragment numbers per write, so a failure reads as its script
    const writes = 1 + index(4);
    for (let w = 0; w < writes; w++) {
      const picks = Array.from({ length: 1 + index(3) }, () => index(FRAGMENTS.length));
      steps.push(idle(cat(...picks.map((f) => FRAGMENTS[f](key)))));
      shown.push(picks.join(","));
    }
    const end = index(ENDINGS.length);
    steps.push(idle(ENDINGS[end](key)));
    return { name: `random ${seed}/${i} [${shown.join(" | ")} | end ${end}]`, steps };
  });
}

/**
 * A server that closes while the client still sends (a refusal before a
 * large packet's end) fails the send or not by timing alone: not compared.
 */
function unraced(steps: string[]): string[] {
  return steps.map((s) => s.replace(" <send failed>", ""));
}

const NAME = "serve -S answers binary SASL byte-identically to memcached -S (differential)";

Deno.test({
  name: NAME,
  ignore: ignoreUnless(NAME, ["memcached", "saslpasswd2"]),
  async fn(t) {
    const filter = Deno.env.get("DIFF_FILTER");
    const seed = Number(Deno.env.get("SASL_FUZZ_SEED") ?? Date.now() % 1_000_000);
    console.log(`random conversations: SASL_FUZZ_SEED=${seed}`);
    const all = [...CASES, ...randomCases(seed, Number(Deno.env.get("SASL_FUZZ_CASES") ?? 40))];
    const cases = filter ? all.filter((c) => new RegExp(filter).test(c.name)) : all;
    const dir = await Deno.makeTempDir({ prefix: "memrep-sasl-diff-" });
    await Deno.writeTextFile(`${dir}/pwdb`, USERS.map(([u, p]) => `${u}:${p}\n`).join(""));
    const ref = await startReference(dir);
    const sut = await startMemrep(["serve", "-t", "1", "-S"], {
      env: { MEMCACHED_SASL_PWDB: `${dir}/pwdb` },
    });
    try {
      // Every case has its own connection and keys: a few at a time, all compared.
      const results = new Map<string, [string[], string[]]>();
      for (let i = 0; i < cases.length; i += 8) {
        await Promise.all(
          cases.slice(i, i + 8).map(async (c) => {
            const [expected, actual] = await Promise.all([
              runBinCase(ref.port, c).then(unraced),
              runBinCase(sut.port, c).then(unraced),
            ]);
            results.set(c.name, [expected, actual]);
          }),
        );
      }
      // Both servers saw the same attempts: memcached's auth counters must agree.
      const counters: BinCase = {
        name: "auth_cmds and auth_errors after all cases",
        steps: [idle(auth()), {
          send: p({ op: OP.STAT }),
          statsKeys: ["auth_cmds", "auth_errors"],
        }],
      };
      results.set(
        counters.name,
        await Promise.all([runBinCase(ref.port, counters), runBinCase(sut.port, counters)]),
      );
      for (const c of [...cases, counters]) {
        await t.step(c.name, () => {
          const [expected, actual] = results.get(c.name)!;
          if (Deno.env.get("DIFF_SHOW")) console.log(c.name, "\n", expected.join("\n---\n"));
          const lines = stepDiffs(expected, actual);
          equal(lines.length, 0, `replies differ\n${lines.join("\n")}`);
        });
      }
    } finally {
      await sut.stop();
      await ref.stop();
      await Deno.remove(dir, { recursive: true });
    }
  },
});

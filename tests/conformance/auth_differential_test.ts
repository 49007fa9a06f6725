/**
 * memrep serve -Y against memcached 1.6.18 -Y with the same auth file:
 * the same bytes on fresh connections, the raw replies (and closes)
 * compared byte for byte. The `mn` barrier of differential.ts cannot be
 * used before a login (it is refused too), so each step reads until idle.
 * @module
 */

import {
  connect,
  equal,
  escapeBytes,
  ignoreUnless,
  mulberry32,
  type ProcessHandle,
  startMemcached,
  startMemrep,
  toBytes,
} from "../helpers/mod.ts";

const FILE = "alice:secret\nbob:pw2\ncarol:c:o:l\n";
const LOGIN = "set a 0 0 12\r\nalice secret\r\n";

/** Each case: the chunks sent on one connection, one after the other. `{k}`: a key of its own. */
const CASES: Array<[string, string[]]> = [
  ["get", ["get foo\r\n"]],
  ["stats", ["stats\r\n"]],
  ["version", ["version\r\n"]],
  ["quit stays open", ["quit\r\n", "version\r\n"]],
  ["meta mg", ["mg foo v\r\n"]],
  ["meta ms data line replaced in the batch", ["ms foo 3\r\nbar\r\n"]],
  ["mn", ["mn\r\n"]],
  ["empty line", ["\r\n"]],
  ["lone newline waits", ["\n"]],
  ["lone newline then a command", ["\n", "get a\r\n"]],
  ["pipelined refusals: one reply per batch", ["get foo\r\nget bar\r\n"]],
  ["refusals in separate writes", ["get foo\r\n", "get bar\r\n"]],
  ["one token", ["set a 0 0 3\r\nbob\r\n"]],
  ["login", [LOGIN]],
  ["wrong password", ["set a 0 0 12\r\nalice secreX\r\n"]],
  ["user is case sensitive", ["set a 0 0 7\r\nBOB pw2\r\n"]],
  ["login then service", [LOGIN + "get {k}\r\n", "set {k} 0 0 1\r\nx\r\nget {k}\r\n"]],
  ["login then meta", [LOGIN + "mn\r\nmg {k} v\r\n"]],
  ["spaces between tokens", ["set a 0 0 10\r\nbob    pw2\r\nget {k}\r\n"]],
  ["extra token ignored", ["set a 0 0 9\r\nbob pw2 x\r\nget {k}\r\n"]],
  ["password with colons", ["set a 0 0 11\r\ncarol c:o:l\r\n"]],
  ["bad termination", ["set a 0 0 7\r\nbob pw2XX"]],
  ["noreply still answers", ["set a 0 0 7 noreply\r\nbob pw2\r\n"]],
  ["short set line", ["set a 0 0\r\n"]],
  ["SET upper case", ["SET a 0 0 7\r\nbob pw2\r\n"]],
  ["flags unread", ["set a x y 7\r\nbob pw2\r\nmn\r\n"]],
  ["bad length", ["set a 0 0 7x\r\nbob pw2\r\n"]],
  ["negative length", ["set a 0 0 -7\r\nbob pw2\r\n"]],
  ["plus length", ["set a 0 0 +7\r\nbob pw2\r\n"]],
  ["length wraps at 32 bits", ["set a 0 0 4294967303\r\nbob pw2\r\n"]],
  ["length -2 wraps", ["set a 0 0 4294967295\r\nbob pw2\r\n"]],
  ["length -1 wraps", ["set a 0 0 4294967294\r\nbob pw2\r\n"]],
  ["bare LF line", ["set a 0 0 7\nbob pw2\r\n"]],
  ["tab is not a separator", ["set\ta 0 0 7\r\nbob pw2\r\n"]],
  ["leading spaces", ["  set a 0 0 7\r\nbob pw2\r\n"]],
  ["LF inside the token", ["set a 0 0 8\r\nbob pw2\n\r\n"]],
  ["zero length", ["set a 0 0 0\r\n\r\n"]],
  ["trailing space", ["set a 0 0 4\r\nbob \r\n"]],
  ["NUL cuts the token", ["set a 0 0 7\r\nbob\x00pw2\r\n"]],
  ["NUL after the password", ["set a 0 0 9\r\nbob pw2\x00x\r\n"]],
  ["NUL in the set line", ["set a\x00 0 0 7\r\nbob pw2\r\n"]],
  ["failure then login in one batch", [
    "set a 0 0 3\r\nbob\r\nset a 0 0 7\r\nbob pw2\r\nget {k}\r\n",
  ]],
  ["failure then login in two writes", ["set a 0 0 3\r\nbob\r\n", "set a 0 0 7\r\nbob pw2\r\n"]],
  ["token split over writes", ["set a 0 0 12\r\nali", "ce sec", "ret\r\n", "mn\r\n"]],
  ["token of 5000 bytes", ["set a 0 0 5000\r\n" + "x".repeat(5000) + "\r\n"]],
  ["token too long for the buffer", ["set a 0 0 20000\r\n" + "x".repeat(20000) + "\r\n"]],
  ["2048 bytes without newline wait", ["x".repeat(2048)]],
  ["2049 bytes without newline close", ["x".repeat(2049)]],
  ["binary header is a text line here", [
    "\x80\x0b\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00",
  ]],
];

async function transcript(port: number, chunks: string[], idleMs = 150): Promise<string[]> {
  const c = await connect(port);
  const out: string[] = [];
  try {
    for (const chunk of chunks) {
      if (c.eof) break;
      await c.send(toBytes(chunk)).catch(() => {});
      const reply = await c.readIdle(idleMs, 5000);
      out.push(escapeBytes(reply) + (c.eof ? "<closed>" : ""));
    }
  } finally {
    await c.close();
  }
  return out;
}

/**
 * One conversation's whole transcript from memcached and from memrep. A
 * reply later than the idle time would land in the next step: a difference
 * counts only when a much longer idle time confirms it.
 */
async function bothTranscripts(
  refPort: number,
  sutPort: number,
  steps: string[],
): Promise<[string[], string[]]> {
  let want: string[] = [], got: string[] = [];
  for (const idleMs of [150, 800, 3000]) {
    [want, got] = await Promise.all([
      transcript(refPort, steps, idleMs).then((t) => [t.join("")]),
      transcript(sutPort, steps, idleMs).then((t) => [t.join("")]),
    ]);
    if (JSON.stringify(want) === JSON.stringify(got)) break;
  }
  return [want, got];
}

Deno.test({
  name: "serve -Y answers every pre-login input byte for byte as memcached -Y",
  ignore: ignoreUnless("serve -Y differential", ["memcached"]),
  fn: async () => {
    const path = await Deno.makeTempFile({ prefix: "memrep-auth-" });
    await Deno.writeTextFile(path, FILE);
    const memcached = await startMemcached(["-Y", path]);
    const memrep = await startMemrep(["serve", "-Y", path]);
    try {
      const failures: string[] = [];
      // A few cases at a time: each runs on its own connections and keys.
      for (let i = 0; i < CASES.length; i += 6) {
        await Promise.all(
          CASES.slice(i, i + 6).map(async ([name, chunks], j) => {
            const steps = chunks.map((c) => c.replaceAll("{k}", `key${i + j}`));
            const [want, got] = await bothTranscripts(memcached.port, memrep.port, steps);
            if (JSON.stringify(want) !== JSON.stringify(got)) {
              failures.push(
                `${name}:\n  memcached ${JSON.stringify(want)}\n  memrep    ${JSON.stringify(got)}`,
              );
            }
          }),
        );
      }
      equal(
        failures.length,
        0,
        `${failures.length} of ${CASES.length} cases differ:\n${failures.join("\n")}`,
      );
    } finally {
      await memrep.stop();
      await memcached.stop();
      await Deno.remove(path);
    }
  },
});

/** Auth files and the logins tried on each: memcached -Y and memrep -Y must agree on all. */
const FILES: Array<[string, string, string[]]> = [
  ["CRLF lines", "alice:secret\r\nbob:pw2\r\n", ["alice secret", "bob pw2", "bob pw2\r"]],
  ["no final newline", "alice:secret\nbob:pw2", ["alice secret", "bob pw2"]],
  ["colons in the password", "u:p:q\n", ["u p:q", "u p"]],
  ["spaces kept", " u: p\n", ["u p", "u  p"]],
  ["empty user or password", ":nouser\nu:\n", ["u x"]],
  ["text after CR is lost", "a:b\rjunk\nc:d\n", ["a b", "c d"]],
  ["NUL in a password ends the file", "a:b\0x\nc:d\n", ["a b", "c d"]],
  ["blank line", "a:b\n\nc:d\n", ["a b"]],
  ["comment line", "# users\na:b\n", ["a b"]],
  ["empty file", "", ["a b"]],
];

async function loginResults(port: number, tokens: string[]): Promise<string[]> {
  const out: string[] = [];
  for (const token of tokens) {
    const c = await connect(port);
    try {
      await c.send(`set a 0 0 ${token.length}\r\n${token}\r\n`);
      out.push(await c.readLine(5000).catch(() => "<no reply>"));
    } finally {
      await c.close();
    }
  }
  return out;
}

/** "exit" when the server did not start, else the login replies. */
async function fileOutcome(start: () => Promise<ProcessHandle>, tokens: string[]): Promise<string> {
  let server: ProcessHandle;
  try {
    server = await start();
  } catch {
    return "exit";
  }
  try {
    return JSON.stringify(await loginResults(server.port, tokens));
  } finally {
    await server.stop();
  }
}

Deno.test({
  name: "serve -Y reads auth files as memcached -Y: the same files start, the same logins pass",
  ignore: ignoreUnless("serve -Y auth file differential", ["memcached"]),
  fn: async () => {
    const failures: string[] = [];
    // Three files at a time: starting many servers at once on a loaded machine is slow.
    for (let i = 0; i < FILES.length; i += 3) {
      await Promise.all(
        FILES.slice(i, i + 3).map(async ([name, text, tokens]) => {
          const path = await Deno.makeTempFile({ prefix: "memrep-authfile-" });
          try {
            await Deno.writeTextFile(path, text);
            const opts = { readyTimeoutMs: 20_000 };
            const [want, got] = await Promise.all([
              fileOutcome(() => startMemcached(["-Y", path], opts), tokens),
              fileOutcome(() => startMemrep(["serve", "-t", "1", "-Y", path], opts), tokens),
            ]);
            if (want !== got) failures.push(`${name}:\n  memcached ${want}\n  memrep    ${got}`);
          } finally {
            await Deno.remove(path);
          }
        }),
      );
    }
    equal(failures.length, 0, failures.join("\n"));
  },
});

Deno.test({
  name: "serve -S refuses text clients as memcached -S: silence before 24 bytes, then a close",
  ignore: ignoreUnless("serve -S text differential", ["memcached"]),
  fn: async () => {
    // Debian's memcached is built with Cyrus SASL: it needs a config to start, not users.
    const dir = await Deno.makeTempDir({ prefix: "memrep-sasl-" });
    await Deno.writeTextFile(`${dir}/memcached.conf`, "mech_list: plain\n");
    await Deno.writeTextFile(`${dir}/pwdb`, "alice:secret\n");
    const memcached = await startMemcached(["-S"], { env: { SASL_CONF_PATH: dir } });
    const memrep = await startMemrep(["serve", "-S"], {
      env: { MEMCACHED_SASL_PWDB: `${dir}/pwdb` },
    });
    try {
      const steps = ["get foo\r\n", "set a 0 0 12\r\n", "alice secret\r\nget foo\r\n"];
      const [want, got] = await Promise.all([
        transcript(memcached.port, steps),
        transcript(memrep.port, steps),
      ]);
      equal(JSON.stringify(got), JSON.stringify(want));
      equal(want[want.length - 1], "<closed>");
    } finally {
      await memrep.stop();
      await memcached.stop();
      await Deno.remove(dir, { recursive: true });
    }
  },
});

const FRAGMENTS = [
  "get {k}\r\n",
  "mn\r\n",
  "mg {k} v\r\n",
  "\r\n",
  "\n",
  "alice secret\r\n",
  "bob pw2\r\n",
  "bob\r\n",
  "bob pw2 extra\r\n",
  "carol c:o:l\r\n",
  "quit\r\n",
  "  set {k} 0 0 7\r\n",
  "set {k} 0 0 12\r\n",
  "set {k} 0 0 7\r\n",
  "set {k} 0 0 7 noreply\r\n",
  "set {k} 1 2 3\r\n",
  "set {k} 0 0 -1\r\n",
  "set {k} 0 0 4294967302\r\n",
  "set {k} 0 0 0\r\n",
  "set {k}\r\n",
  "ms {k} 2\r\nhi\r\n",
];

/** Longer than any data block the fragments open, then a command that answers. */
const FILLER = "x".repeat(16) + "\r\nmn\r\n";
const JUNK = "ab \t\0\r\n\x80:9";

function randomCase(rand: () => number): string[] {
  const writes: string[] = [];
  const n = 1 + Math.floor(rand() * 3);
  for (let w = 0; w < n; w++) {
    let chunk = "";
    const parts = 1 + Math.floor(rand() * 4);
    for (let p = 0; p < parts; p++) {
      if (rand() < 0.15) {
        // Junk: printable, tabs, NULs, CR, LF, and the binary magic.
        const len = 1 + Math.floor(rand() * 12);
        for (let i = 0; i < len; i++) chunk += JUNK[Math.floor(rand() * JUNK.length)];
      } else chunk += FRAGMENTS[Math.floor(rand() * FRAGMENTS.length)];
    }
    writes.push(chunk);
  }
  return writes;
}

Deno.test({
  name: "serve -Y matches memcached -Y on random pre-login sequences",
  ignore: ignoreUnless("serve -Y random differential", ["memcached"]),
  fn: async () => {
    const seed = Number(Deno.env.get("AUTH_FUZZ_SEED") ?? Date.now() % 1_000_000);
    const rand = mulberry32(seed);
    const cases = Array.from({ length: 48 }, () => randomCase(rand));
    const path = await Deno.makeTempFile({ prefix: "memrep-auth-" });
    await Deno.writeTextFile(path, FILE);
    const memcached = await startMemcached(["-Y", path]);
    const memrep = await startMemrep(["serve", "-Y", path]);
    try {
      const failures: string[] = [];
      for (let i = 0; i < cases.length; i += 8) {
        await Promise.all(
          cases.slice(i, i + 8).map(async (writes, j) => {
            // memcached holds replies while a later set waits for its data (memrep does
            // not): the filler completes any data block, and whole conversations are compared.
            const steps = writes.map((w) => w.replaceAll("{k}", `fz${seed}_${i + j}`));
            steps.push(FILLER);
            const [want, got] = await bothTranscripts(memcached.port, memrep.port, steps);
            if (JSON.stringify(want) !== JSON.stringify(got)) {
              failures.push(
                `${JSON.stringify(steps)}:\n  memcached ${JSON.stringify(want)}\n  memrep    ${
                  JSON.stringify(got)
                }`,
              );
            }
          }),
        );
      }
      equal(failures.length, 0, `seed ${seed} (AUTH_FUZZ_SEED):\n${failures.join("\n")}`);
    } finally {
      await memrep.stop();
      await memcached.stop();
      await Deno.remove(path);
    }
  },
});

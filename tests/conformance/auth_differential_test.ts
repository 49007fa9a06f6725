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

async function transcript(port: number, chunks: string[]): Promise<string[]> {
  const c = await connect(port);
  const out: string[] = [];
  try {
    for (const chunk of chunks) {
      if (c.eof) break;
      await c.send(toBytes(chunk)).catch(() => {});
      const reply = await c.readIdle(150, 3000);
      out.push(escapeBytes(reply) + (c.eof ? "<closed>" : ""));
    }
  } finally {
    await c.close();
  }
  return out;
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
            const [want, got] = await Promise.all([
              transcript(memcached.port, steps),
              transcript(memrep.port, steps),
            ]);
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

/**
 * lib/auth without sockets: memcached's password file rules, the SASL
 * password database rules, SASL PLAIN and the per-connection login states.
 * @module
 */

import {
  AUTH_CLOSE,
  Authenticator,
  AuthFileError,
  AuthSession,
  binaryRefusal,
  binarySasl,
  checkPwdb,
  constantTimeEqual,
  parseAuthFile,
  SaslStatus,
} from "../../lib/auth/mod.ts";
import { Writer } from "../../lib/protocol/mod.ts";
import { deepEqual, equal, fail, ok } from "../helpers/mod.ts";

function thrown(fn: () => unknown): Error {
  try {
    fn();
  } catch (err) {
    if (err instanceof AuthFileError) return err;
    throw err;
  }
  fail("expected an AuthFileError");
}

const enc = new TextEncoder();
const dec = new TextDecoder();
function b(s: string) {
  return enc.encode(s);
}

function users(text: string): string[] | string {
  const r = parseAuthFile(b(text));
  return r.ok
    ? r.entries.map((e) => `${dec.decode(e.user)}|${dec.decode(e.pass)}`)
    : `bad@${r.line}`;
}

Deno.test("auth file: user ends at the first ':', password at CR or end of line, nothing trimmed", () => {
  deepEqual(users("alice:secret\nbob:pw2\n"), ["alice|secret", "bob|pw2"]);
  deepEqual(users("alice:secret"), ["alice|secret"]); // no final newline
  deepEqual(users("a:b\r\nc:d\r\n"), ["a|b", "c|d"]);
  deepEqual(users("u:p:q\n"), ["u|p:q"]); // ':' belongs to the password
  deepEqual(users(" u : p \n"), [" u | p "]);
  deepEqual(users(":nouser\nu:\n"), ["|nouser", "u|"]);
  deepEqual(users("a:b\rjunk\nc:d\n"), ["a|b", "c|d"]); // after CR the line is dropped
  deepEqual(users(""), []);
});

Deno.test("auth file: comments, blank lines and lines without ':' make the file malformed", () => {
  equal(users("# users\na:b\n"), "bad@1");
  equal(users("a:b\n\nc:d\n"), "bad@2");
  equal(users("\n"), "bad@1");
  equal(users("a:b\nnocolon\n"), "bad@2");
  equal(users("a\0b:c\n"), "bad@1");
  equal(users(`u:${"p".repeat(300)}\n`), "bad@1"); // memcached would cut it silently
});

Deno.test("auth file: a NUL in a password ends the file; more than 8 users are all kept", () => {
  deepEqual(users("a:b\0x\nc:d\n"), ["a|b"]);
  const many = Array.from({ length: 20 }, (_, i) => `user${i}:pass${i}`).join("\n");
  equal((users(many) as string[]).length, 20);
});

Deno.test("constant-time compare is exact on bytes and length", () => {
  ok(constantTimeEqual(b("secret"), b("secret")));
  ok(!constantTimeEqual(b("secret"), b("secreT")));
  ok(!constantTimeEqual(b("secret"), b("secret2")));
  ok(!constantTimeEqual(b(""), b("x")));
  ok(constantTimeEqual(b(""), b("")));
});

Deno.test("SASL pwdb: first line of the user decides, trailing ':' fields and CR allowed", () => {
  const db = b("alice:secret:extra\nbob:pw2\r\nbob:other\ncarol:c\n");
  ok(checkPwdb(db, b("alice"), b("secret")));
  ok(checkPwdb(db, b("alice"), b("secret:extra"))); // memcached compares the given length
  ok(checkPwdb(db, b("bob"), b("pw2")));
  ok(!checkPwdb(db, b("bob"), b("other"))); // the first bob line decided
  ok(!checkPwdb(db, b("carol"), b("c2")));
  ok(!checkPwdb(db, b("caro"), b("l:c")));
  ok(!checkPwdb(db, b("dave"), b("x")));
  ok(!checkPwdb(db, b("alice"), b("secre")));
  ok(!checkPwdb(b(`u:${"p".repeat(260)}\n`), b("u"), b("p".repeat(260))));
});

async function withFile<T>(text: string, fn: (path: string) => T | Promise<T>): Promise<T> {
  const path = await Deno.makeTempFile({ prefix: "memrep-auth-" });
  try {
    await Deno.writeTextFile(path, text);
    return await fn(path);
  } finally {
    await Deno.remove(path);
  }
}

Deno.test("Authenticator.load: memcached's messages for a missing or malformed file, and -S without users", async () => {
  const missing = thrown(() => Authenticator.load({ sasl: false, authFile: "/nonexistent/pw" }));
  equal(
    missing.message,
    "Could not open authfile [/nonexistent/pw] for reading, error No such file or directory",
  );
  await withFile("a:b\n# no\n", (path) => {
    const e = thrown(() => Authenticator.load({ sasl: false, authFile: path }));
    ok(e.message.startsWith(`Authfile [${path}] has a malformed entry. Should be 'user:password'`));
  });
  thrown(() => Authenticator.load({ sasl: true }));
  thrown(() => Authenticator.load({ sasl: true, pwdbFile: "/nonexistent/db" }));
});

Deno.test("a thread that starts later takes the users in force, and each reload's bytes", async () => {
  const enc = new TextEncoder();
  const may = (a: Authenticator, pass: string) =>
    a.checkText(enc.encode("alice"), enc.encode(pass));
  await withFile("alice:old\n", async (path) => {
    const main = Authenticator.load({ sasl: false, authFile: path });
    await Deno.writeTextFile(path, "alice:new\n");
    const reloaded = main.reload();
    await Deno.writeTextFile(path, "alice:newer\n\n"); // malformed: a reload keeps "new"
    thrown(() => main.reload());
    const later = Authenticator.load(main.current); // the file is not read
    ok(may(later, "new") && !may(later, "newer") && !may(later, "old"));
    equal(later.config.authFile, path);
    const started = Authenticator.load({
      sasl: false,
      authFile: path,
      authBytes: enc.encode("alice:old\n"),
    });
    started.adopt(reloaded!);
    ok(may(started, "new") && !may(started, "old"));
  });
});

Deno.test("SASL PLAIN: [authzid] NUL user NUL pass, exactly two NULs, authzid must be the user", async () => {
  await withFile("alice:secret\nbob:pw2\nempty:\n", (path) => {
    const a = Authenticator.load({ sasl: true, authFile: path });
    ok(a.verifyPlain(b("\0alice\0secret")));
    ok(a.verifyPlain(b("alice\0alice\0secret")));
    ok(a.verifyPlain(b("\0bob\0pw2")));
    ok(!a.verifyPlain(b("bob\0alice\0secret")));
    ok(!a.verifyPlain(b("\0alice\0wrong")));
    ok(!a.verifyPlain(b("\0alice\0secret\0")));
    ok(!a.verifyPlain(b("alice\0secret")));
    ok(!a.verifyPlain(b("alicesecret")));
    ok(!a.verifyPlain(b("\0empty\0"))); // an empty password never logs in
    ok(!a.verifyPlain(b("\0\0secret")));
    ok(a.isPlain(b("PLAIN")) && a.isPlain(b("plain")) && !a.isPlain(b("PLAINX")));
  });
});

Deno.test("SASL session: memcached's replies and counters for auth, continue+step, bad step, list mechs", async () => {
  await withFile("alice:secret\n", (path) => {
    const auth = Authenticator.load({ sasl: true, authFile: path });
    const counters = { authCmds: 0, authErrors: 0 };
    const s = new AuthSession(auth, counters);
    const show = (r: { status: number; body: Uint8Array }) => `${r.status}:${dec.decode(r.body)}`;
    ok(!s.binaryPermits(0x00) && !s.binaryPermits(0x0a) && s.binaryPermits(0x0b));
    ok(s.binaryPermits(0x20) && s.binaryPermits(0x21) && s.binaryPermits(0x22));
    equal(show(s.listMechanisms()), "0:PLAIN");
    equal(
      show(s.saslAuth(b("PLAIN"), b("\0alice\0wrong"))),
      `${SaslStatus.AUTH_ERROR}:Auth failure.`,
    );
    equal(show(s.saslStep(b("PLAIN"), b("\0alice\0secret"))), "32:Auth failure."); // no start
    equal(show(s.saslAuth(b("CRAM-MD5"), b("x"))), "32:Auth failure.");
    ok(!s.authenticated);
    equal(show(s.saslAuth(b("PLAIN"), b("\0alice\0secret"))), "0:Authenticated");
    ok(s.authenticated && s.binaryPermits(0x00));
    equal(show(s.saslStep(b("PLAIN"), b("\0alice\0secret"))), "32:Auth failure."); // after done
    ok(!s.authenticated);
    equal(show(s.saslAuth(b("plain"), b(""))), `${SaslStatus.AUTH_CONTINUE}:`);
    equal(show(s.saslStep(b("PLAIN"), b("\0alice\0bad"))), "32:Auth failure.");
    // After a login the next credentials fail (Cyrus), and failed steps do not clear that.
    equal(show(s.saslStep(b("PLAIN"), b("\0alice\0secret"))), "32:Auth failure.");
    equal(show(s.saslStep(b("PLAIN"), b("\0alice\0secret"))), "32:Auth failure.");
    s.listMechanisms(); // memcached's init_sasl_conn: listing ends the login
    ok(!s.authenticated);
    // ...but not a conversation waiting for its step (checked on memcached 1.6.18 -S).
    equal(show(s.saslAuth(b("PLAIN"), b(""))), "33:");
    s.listMechanisms();
    equal(show(s.saslStep(b("XYZ"), b(""))), "32:Auth failure."); // the step's key is not read
    equal(show(s.saslStep(b("XYZ"), b("\0alice\0secret"))), "32:Auth failure."); // still
    deepEqual(counters, { authCmds: 10, authErrors: 9 });
    // The same sequence on memcached 1.6.18 -S gives these replies (sasl_differential_test.ts).
    // A fresh connection: a failed step may be retried, and the step's key is not read.
    const f = new AuthSession(auth, counters);
    equal(show(f.saslAuth(b("plain"), b(""))), `${SaslStatus.AUTH_CONTINUE}:`);
    equal(show(f.saslStep(b("PLAIN"), b("\0alice\0bad"))), "32:Auth failure.");
    equal(show(f.saslStep(b("XYZ"), b("\0alice\0secret"))), "0:Authenticated");
    // A failed auth clears the failure to come after a login.
    equal(show(f.saslAuth(b("PLAIN"), b("\0alice\0secret"))), "32:Auth failure.");
    equal(show(f.saslAuth(b("PLAIN"), b("\0alice\0secret"))), "0:Authenticated");
  });
});

function text(s: AuthSession, input: string): { used: number[]; out: string } {
  const buf = b(input), out = new Writer();
  const used: number[] = [];
  let at = 0;
  while (at < buf.length) {
    const n = s.readText(buf, at, buf.length, out);
    used.push(n);
    if (n <= 0) break;
    at += n;
    if (s.authenticated) break;
  }
  return { used, out: dec.decode(out.view()) };
}

Deno.test("text login: the set token, replies replaced within one batch, size rules", async () => {
  await withFile("alice:secret\n", (path) => {
    const auth = Authenticator.load({ sasl: false, authFile: path });
    const fresh = () => new AuthSession(auth, { authCmds: 0, authErrors: 0 });
    equal(text(fresh(), "get a\r\n").out, "CLIENT_ERROR unauthenticated\r\n");
    equal(text(fresh(), "get a\r\nget b\r\n").out, "CLIENT_ERROR unauthenticated\r\n");
    equal(text(fresh(), "set k 0 0 12\r\nalice secret\r\n").out, "STORED\r\n");
    equal(text(fresh(), "set k x y +12 noreply\r\nalice secret\r\n").out, "STORED\r\n");
    equal(text(fresh(), "set k 0 0 4294967308\r\nalice secret\r\n").out, "STORED\r\n");
    equal(
      text(fresh(), "set k 0 0 12\r\nalice secreT\r\n").out,
      "CLIENT_ERROR authentication failure\r\n",
    );
    equal(
      text(fresh(), "set k 0 0 5\r\nalice\r\n").out,
      "CLIENT_ERROR bad authentication token format\r\n",
    );
    equal(
      text(fresh(), "set k 0 0 12\r\nalice secretXX").out,
      "CLIENT_ERROR bad command line termination\r\n",
    );
    equal(text(fresh(), "set k 0 0 -12\r\n").out, "CLIENT_ERROR unauthenticated\r\n");
    equal(text(fresh(), "set k 0 0 12x\r\n").out, "CLIENT_ERROR unauthenticated\r\n");
    const waiting = fresh();
    deepEqual(text(waiting, "set k 0 0 12\r\nalice").used, [14, 0]);
    equal(waiting.need, 14);
    deepEqual(text(fresh(), "\n").used, [0]);
    deepEqual(text(fresh(), "x".repeat(2048)).used, [0]);
    deepEqual(text(fresh(), "x".repeat(2049)).used, [AUTH_CLOSE]);
    deepEqual(text(fresh(), "set k 0 0 20000\r\n" + "x".repeat(16384)).used, [AUTH_CLOSE]);
  });
});

Deno.test("text login with -S but no auth file: text waits for a 24-byte header, then closes", async () => {
  await withFile("alice:secret\n", (path) => {
    const auth = Authenticator.load({ sasl: true, pwdbFile: path });
    const s = new AuthSession(auth, { authCmds: 0, authErrors: 0 });
    deepEqual(text(s, "get foo\r\n").used, [0]);
    deepEqual(text(s, "get foo\r\nget bar\r\nget baz\r\n").used, [AUTH_CLOSE]);
  });
});

Deno.test("binary SASL dispatch: memcached's statuses, bodies and closes per request shape", async () => {
  await withFile("alice:secret\n", (path) => {
    const sasl = Authenticator.load({ sasl: true, authFile: path });
    const textOnly = Authenticator.load({ sasl: false, authFile: path });
    const s = new AuthSession(sasl, { authCmds: 0, authErrors: 0 });
    const show = (a: { status: number; body: Uint8Array; close: boolean }) =>
      `${a.status}:${dec.decode(a.body)}${a.close ? ":close" : ""}`;
    const none = new Uint8Array(0);
    equal(show(binarySasl(s, 0x20, 0, none, none)), "0:PLAIN");
    equal(show(binarySasl(s, 0x20, 0, none, b("x"))), "4:Invalid arguments:close");
    equal(show(binarySasl(s, 0x21, 0, none, b("\0alice\0secret"))), "4:Invalid arguments:close");
    equal(show(binarySasl(s, 0x21, 4, b("PLAIN"), b("x"))), "4:Invalid arguments:close");
    equal(show(binarySasl(s, 0x21, 0, b("P".repeat(33)), b("x"))), "4:Invalid arguments");
    equal(show(binarySasl(s, 0x21, 0, b("PLAIN"), b("\0alice\0nope"))), "32:Auth failure.");
    equal(show(binarySasl(s, 0x21, 0, b("PLAIN"), b("\0alice\0secret"))), "0:Authenticated");
    ok(s.authenticated);
    equal(show(binarySasl(null, 0x20, 0, none, none)), "129:Unknown command");
    const t = new AuthSession(textOnly, { authCmds: 0, authErrors: 0 });
    equal(show(binarySasl(t, 0x21, 0, b("PLAIN"), b("\0alice\0secret"))), "129:Unknown command");
    equal(show(binaryRefusal()), "32:Auth failure.:close");
  });
});

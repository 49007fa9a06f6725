/**
 * `memrep serve -Y` / `-S` as a process: text login, refusals before it,
 * counters and settings, SIGHUP reload, threads, flags, and pymemcache
 * logging in with a plain `set` (it has no auth option of its own).
 * @module
 */

import {
  connect,
  deepEqual,
  equal,
  eventually,
  match,
  ok,
  runMemrep,
  startMemrep,
  type TestConn,
} from "../helpers/mod.ts";

async function authFile(text: string): Promise<{ path: string; cleanup: () => Promise<void> }> {
  const path = await Deno.makeTempFile({ prefix: "memrep-auth-" });
  await Deno.writeTextFile(path, text);
  return { path, cleanup: () => Deno.remove(path).catch(() => {}) };
}

async function login(c: TestConn, user: string, pass: string): Promise<string> {
  const token = `${user} ${pass}`;
  return await c.request(`set auth 0 0 ${token.length}\r\n${token}\r\n`);
}

Deno.test("serve -Y: nothing but the login before it, exact replies, the connection survives", async () => {
  const file = await authFile("alice:secret\nbob:hunter2\n");
  const server = await startMemrep(["serve", "-Y", file.path], { cleanup: file.cleanup });
  const c = await connect(server.port);
  try {
    const refused = "CLIENT_ERROR unauthenticated\r\n";
    equal(await c.request("get foo"), refused);
    equal(await c.request("stats"), refused);
    equal(await c.request("version"), refused);
    equal(await c.request("mg foo v"), refused);
    equal(await c.request("mn"), refused);
    equal(await c.request("flush_all"), refused);
    equal(await c.request("quit"), refused); // even quit: the connection stays
    equal(await c.request("ms foo 3"), refused);
    equal(await c.request("bar"), refused); // the ms data line is a line of its own
    equal(
      await c.request("set foo 0 0 3\r\nbar"),
      "CLIENT_ERROR bad authentication token format\r\n",
    );
    equal(await login(c, "alice", "wrong"), "CLIENT_ERROR authentication failure\r\n");
    equal(await login(c, "bob", "secret"), "CLIENT_ERROR authentication failure\r\n");
    equal(await login(c, "alice", "secret"), "STORED\r\n");
    // Logged in: normal service, and the login set stored nothing.
    equal(await c.request("get auth", "END\r\n"), "END\r\n");
    equal(await c.request("set foo 0 0 3\r\nbar"), "STORED\r\n");
    equal(await c.request("get foo", "END\r\n"), "VALUE foo 0 3\r\nbar\r\nEND\r\n");
    equal(await c.request("mg foo v"), "VA 3\r\n");
    equal(await c.readLine(), "bar");
    const s = await c.stats();
    equal(s.get("auth_cmds"), "3");
    equal(s.get("auth_errors"), "2");
    const settings = await c.stats("settings");
    equal(settings.get("auth_enabled_sasl"), "no");
    equal(settings.get("auth_enabled_ascii"), file.path);
  } finally {
    await c.close();
    await server.stop();
  }
});

Deno.test("serve -Y: every user of the file logs in on its own connection; logins are per connection", async () => {
  const names = Array.from({ length: 12 }, (_, i) => [`user${i}`, `pw:${i}:${"x".repeat(i)}`]);
  const file = await authFile(names.map(([u, p]) => `${u}:${p}`).join("\r\n") + "\r\n");
  const server = await startMemrep(["serve", "-Y", file.path], { cleanup: file.cleanup });
  const conns: TestConn[] = [];
  try {
    for (const [user, pass] of names) {
      const c = await connect(server.port);
      conns.push(c);
      equal(await login(c, user, pass), "STORED\r\n", user);
      equal(await c.request(`set k_${user} 0 0 ${user.length}\r\n${user}`), "STORED\r\n");
    }
    const other = await connect(server.port);
    conns.push(other);
    equal(await other.request("get k_user0"), "CLIENT_ERROR unauthenticated\r\n");
    equal(await login(other, "user3", "pw:3:xx"), "CLIENT_ERROR authentication failure\r\n");
    equal(await login(other, "user3", "pw:3:xxx"), "STORED\r\n");
    equal(
      await other.request("get k_user11", "END\r\n"),
      "VALUE k_user11 0 6\r\nuser11\r\nEND\r\n",
    );
  } finally {
    for (const c of conns) await c.close();
    await server.stop();
  }
});

Deno.test("serve -Y with threads: every thread's connections need the login", async () => {
  const file = await authFile("alice:secret\n");
  const server = await startMemrep(["serve", "-t", "2", "-Y", file.path], {
    cleanup: file.cleanup,
  });
  const conns: TestConn[] = [];
  try {
    // SO_REUSEPORT spreads connections: 16 reach both threads with overwhelming probability.
    for (let i = 0; i < 16; i++) {
      const c = await connect(server.port);
      conns.push(c);
      equal(await c.request("get x"), "CLIENT_ERROR unauthenticated\r\n");
      equal(
        await login(c, "alice", i % 2 ? "secret" : "nope"),
        i % 2 ? "STORED\r\n" : "CLIENT_ERROR authentication failure\r\n",
      );
    }
    const s = await conns[1].stats();
    equal(s.get("auth_cmds"), "16");
    equal(s.get("auth_errors"), "8");
  } finally {
    for (const c of conns) await c.close();
    await server.stop();
  }
});

Deno.test("serve -Y reloads the auth file on SIGHUP and keeps the old users when it became malformed", async () => {
  const file = await authFile("alice:old\n");
  const server = await startMemrep(["serve", "-t", "2", "-Y", file.path], {
    cleanup: file.cleanup,
  });
  try {
    await Deno.writeTextFile(file.path, "alice:new\n");
    server.kill("SIGHUP");
    const loginOnce = async (pass: string) => {
      const c = await connect(server.port);
      try {
        return await login(c, "alice", pass);
      } finally {
        await c.close();
      }
    };
    // Each thread reloads on its own; 8 logins in a row cover both listeners.
    const eightLogins = async (pass: string) => {
      const replies = [];
      for (let i = 0; i < 8; i++) replies.push(await loginOnce(pass));
      return replies;
    };
    await eventually(() => eightLogins("new"), Array(8).fill("STORED\r\n"), "new password");
    await Deno.writeTextFile(file.path, "alice:newer\n\n");
    server.kill("SIGHUP");
    await server.waitForLog(/malformed entry/, 10_000);
    equal(await loginOnce("old"), "CLIENT_ERROR authentication failure\r\n");
    deepEqual(await eightLogins("new"), Array(8).fill("STORED\r\n"));
    ok(!server.exited());
  } finally {
    await server.stop();
  }
});

Deno.test("serve -S without -Y refuses text clients as memcached's binary-only port: close after 24 bytes", async () => {
  const file = await authFile("alice:secret\n");
  const server = await startMemrep(["serve", "-S"], {
    env: { MEMCACHED_SASL_PWDB: file.path },
    cleanup: file.cleanup,
  });
  try {
    const short = await connect(server.port);
    await short.send("get foo\r\n");
    ok(!await short.waitClosed(300), "a short line waits for a whole header");
    equal((await short.readIdle(100)).length, 0);
    await short.close();
    const long = await connect(server.port);
    await long.send("get foo\r\nget bar\r\nget baz\r\n");
    ok(await long.waitClosed(5000), "closed");
    equal(long.buffered.length, 0);
    await long.close();
  } finally {
    await server.stop();
  }
});

Deno.test("serve -S -Y: text logs in with the file, stats settings show both", async () => {
  const file = await authFile("alice:secret\n");
  const server = await startMemrep(["serve", "-S", "-Y", file.path], { cleanup: file.cleanup });
  const c = await connect(server.port);
  try {
    equal(await login(c, "alice", "secret"), "STORED\r\n");
    const settings = await c.stats("settings");
    equal(settings.get("auth_enabled_sasl"), "yes");
    equal(settings.get("auth_enabled_ascii"), file.path);
  } finally {
    await c.close();
    await server.stop();
  }
});

Deno.test("serve auth flags: missing or malformed files and impossible combinations exit 2 with memcached's words", async () => {
  const bad = await authFile("alice:secret\n\n");
  const good = await authFile("alice:secret\n");
  try {
    const cases: Array<[string[], RegExp, Record<string, string>?]> = [
      [["-Y", "/nonexistent/pw"], /Could not open authfile \[\/nonexistent\/pw\] for reading/],
      [["-Y", bad.path], /has a malformed entry\. Should be 'user:password'/],
      [["-S"], /-S needs a password file/],
      [["-S"], /Could not open sasl database/, { MEMCACHED_SASL_PWDB: "/nonexistent/db" }],
      [["-S", "-B", "ascii"], /You cannot allow the ASCII protocol while using SASL/, {
        MEMCACHED_SASL_PWDB: good.path,
      }],
      [["-S", "-B", "auto"], /You cannot allow the ASCII protocol while using SASL/, {
        MEMCACHED_SASL_PWDB: good.path,
      }],
      [["-S", "-Y", good.path, "-B", "ascii"], /You cannot allow the ASCII protocol/],
      [["-Y", good.path, "-B", "auto"], /You cannot allow the BINARY protocol while using ascii/],
      [["-Y", good.path, "-U", "11211"], /Cannot use UDP with ascii authentication enabled/],
      [["-S", "-U", "5"], /Cannot enable UDP while using binary SASL authentication/, {
        MEMCACHED_SASL_PWDB: good.path,
      }],
      [["-Y"], /argument missing|requires|-Y/],
    ];
    for (const [flags, message, env] of cases) {
      const r = await runMemrep(["serve", "-l", "127.0.0.1", "-p", "0", ...flags], { env });
      equal(r.code, 2, `${flags.join(" ")}: ${r.stderr}`);
      match(r.stderr, message);
    }
  } finally {
    await bad.cleanup();
    await good.cleanup();
  }
});

const PYTHON = "/usr/bin/python3";

Deno.test({
  name: "pymemcache logs in with set(token) on memrep serve -Y, then works normally",
  ignore: (() => {
    try {
      Deno.statSync(PYTHON);
      return false;
    } catch {
      console.log("SKIP (python3 not installed): pymemcache login");
      return true;
    }
  })(),
  fn: async () => {
    const file = await authFile("alice:secret\n");
    const server = await startMemrep(["serve", "-Y", file.path], { cleanup: file.cleanup });
    try {
      const script = `
import sys
from pymemcache.client.base import Client
from pymemcache.exceptions import MemcacheClientError
c = Client(("127.0.0.1", ${server.port}), default_noreply=False)
try:
    c.get("k")
    print("unauth get answered")
except MemcacheClientError as e:
    print("refused", e)
try:
    c.set("auth", b"alice wrong")
    print("bad login accepted")
except MemcacheClientError as e:
    print("bad login", e)
print("login", c.set("auth", b"alice secret"))
print("set", c.set("k", b"v1"))
print("get", c.get("k"))
print("incr", c.set("n", b"5"), c.incr("n", 2))
`;
      const out = await new Deno.Command(PYTHON, {
        args: ["-c", script],
        stdout: "piped",
        stderr: "piped",
      }).output();
      const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
      equal(out.code, 0, text);
      match(text, /^refused .*unauthenticated/m);
      match(text, /^bad login .*authentication failure/m);
      match(text, /^login True$/m);
      match(text, /^set True$/m);
      match(text, /^get b'v1'$/m);
      match(text, /^incr True 7$/m);
    } finally {
      await server.stop();
    }
  },
});

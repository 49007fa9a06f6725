/**
 * Authentication through `memrep proxy`: clients log in to the proxy
 * (-Y, memcached's text login) and the proxy logs in to backends that
 * run memcached -Y (--backend-auth).
 * @module
 */

import {
  connect,
  equal,
  eventually,
  ignoreUnless,
  match,
  ok,
  runMemrep,
  startMemcached,
  startMemrep,
  type TestConn,
  writeTempFile,
} from "../helpers/mod.ts";

function tempFile(text: string): Promise<string> {
  return writeTempFile(text, "memrep-proxy-auth-");
}

async function login(c: TestConn, user: string, pass: string): Promise<string> {
  const token = `${user} ${pass}`;
  return await c.request(`set auth 0 0 ${token.length}\r\n${token}\r\n`);
}

Deno.test({
  name: "proxy -Y: clients log in first; the proxy logs in to memcached -Y backends",
  ignore: ignoreUnless("proxy auth", ["memcached"]),
  fn: async () => {
    const backendUsers = await tempFile("proxy:b4ckend\n");
    const clientUsers = await tempFile("app:cl1ent\n");
    const primary = await startMemcached(["-Y", backendUsers]);
    const backup = await startMemcached(["-Y", backendUsers]);
    const proxy = await startMemrep([
      "proxy",
      ...["-s", `127.0.0.1:${primary.port}`, "-b", `127.0.0.1:${backup.port}`],
      ...["-Y", clientUsers, "--backend-auth", "proxy:b4ckend"],
    ]);
    const c = await connect(proxy.port);
    try {
      equal(await c.request("get k"), "CLIENT_ERROR unauthenticated\r\n");
      equal(await c.request("get k\r\nget j\r\n"), "CLIENT_ERROR unauthenticated\r\n");
      equal(await login(c, "app", "wrong"), "CLIENT_ERROR authentication failure\r\n");
      equal(await login(c, "proxy", "b4ckend"), "CLIENT_ERROR authentication failure\r\n");
      equal(await login(c, "app", "cl1ent"), "STORED\r\n");
      equal(await c.request("set k 5 0 2\r\nv1"), "STORED\r\n");
      equal(await c.request("get k", "END\r\n"), "VALUE k 5 2\r\nv1\r\nEND\r\n");
      const s = await c.stats("proxy");
      equal(s.get("auth_cmds"), "3");
      equal(s.get("auth_errors"), "2");
      // Both memcached -Y really hold the item: read them with their own login.
      for (const b of [primary, backup]) {
        const d = await connect(b.port);
        equal(await login(d, "proxy", "b4ckend"), "STORED\r\n");
        // The backup's copy is written after the client's reply: poll for it.
        await eventually(() => d.request("get k", "END\r\n"), "VALUE k 5 2\r\nv1\r\nEND\r\n");
        await d.close();
      }
    } finally {
      await c.close();
      await proxy.stop();
      await primary.stop();
      await backup.stop();
      await Deno.remove(backendUsers);
      await Deno.remove(clientUsers);
    }
  },
});

Deno.test({
  name: "proxy with wrong backend credentials answers an error and keeps serving",
  ignore: ignoreUnless("proxy wrong backend auth", ["memcached"]),
  fn: async () => {
    const users = await tempFile("proxy:b4ckend\n");
    const primary = await startMemcached(["-Y", users]);
    const proxy = await startMemrep([
      "proxy",
      ...["-s", `127.0.0.1:${primary.port}`, "--backend-auth", "proxy:nope"],
    ]);
    const c = await connect(proxy.port);
    try {
      const r = await c.request("set k 0 0 2\r\nv1");
      match(r, /^SERVER_ERROR /);
      equal(await c.request("version"), "VERSION 1.6.18\r\n");
      ok(!proxy.exited());
    } finally {
      await c.close();
      await proxy.stop();
      await primary.stop();
      await Deno.remove(users);
    }
  },
});

Deno.test("proxy auth flags: bad files and credentials exit 2", async () => {
  const bad = await tempFile("app:x\n\n");
  try {
    const cases: Array<[string[], RegExp]> = [
      [["-Y", "/nonexistent/users"], /Could not open authfile/],
      [["-Y", bad], /malformed entry/],
      [["--backend-auth", "nocolon"], /expected user:password/],
      [["--backend-auth", "a b:c"], /expected user:password/],
      [["--backend-auth-file", "/nonexistent/x"], /cannot read/],
    ];
    for (const [flags, message] of cases) {
      const r = await runMemrep([
        "proxy",
        "-l",
        "127.0.0.1",
        "-p",
        "0",
        "-s",
        "127.0.0.1:1",
        ...flags,
      ]);
      equal(r.code, 2, `${flags.join(" ")}: ${r.stderr}`);
      match(r.stderr, message);
    }
  } finally {
    await Deno.remove(bad);
  }
});

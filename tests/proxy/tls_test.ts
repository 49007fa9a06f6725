/**
 * `memrep proxy --tls-cert/--tls-key`: clients speak TLS to the proxy;
 * `--backend-tls-ca`: the proxy speaks TLS to memcached -Z and memrep serve
 * -Z backends; certificates made by openssl.
 * @module
 */

import {
  connect,
  connectTls,
  equal,
  makeCerts,
  match,
  ok,
  runMemrep,
  skipWithoutOpenssl,
  startMemcached,
  startMemrep,
  type TestConn,
} from "../helpers/mod.ts";

Deno.test("proxy --tls-cert/--tls-key: TLS clients are routed to plain backends; plain clients get no reply", async () => {
  if (skipWithoutOpenssl("proxy TLS")) return;
  const certs = await makeCerts();
  const backends = await Promise.all([startMemrep(["serve"]), startMemrep(["serve"])]);
  const proxy = await startMemrep([
    "proxy",
    ...backends.flatMap((b) => ["-s", `127.0.0.1:${b.port}`]),
    ...["--tls-cert", certs.cert, "--tls-key", certs.key],
  ]);
  const conns: TestConn[] = [];
  try {
    for (let i = 0; i < 4; i++) conns.push(await connectTls(proxy.port, certs.caPem));
    const seed = Math.floor(Math.random() * 1e9);
    const value = (i: number) => `${seed}/${i}/`.repeat(1 + (i * 31) % 500);
    for (let i = 0; i < 100; i++) {
      const v = value(i);
      equal(await conns[i % 4].request(`set k${i} ${i} 0 ${v.length}\r\n${v}`), "STORED\r\n");
    }
    let wrong = 0;
    for (let i = 0; i < 100; i++) {
      const v = value(i);
      const got = await conns[(i + 1) % 4].request(`get k${i}`, "END\r\n");
      if (got !== `VALUE k${i} ${i} ${v.length}\r\n${v}\r\nEND\r\n`) wrong++;
    }
    equal(wrong, 0);
    // The backends got the items in plain text, spread over both.
    let items = 0;
    for (const b of backends) {
      const c = await connect(b.port);
      const n = Number((await c.stats()).get("curr_items"));
      ok(n > 0, "a backend got nothing");
      items += n;
      await c.close();
    }
    equal(items, 100);
    const plain = await connect(proxy.port);
    await plain.send("version\r\n");
    const got = await plain.readIdle(300, 5000);
    ok(got.length === 0 || got[0] === 21, `not a TLS alert: ${[...got.subarray(0, 8)]}`);
    ok(plain.eof, "the proxy kept a plaintext connection open");
    await plain.close();
  } finally {
    for (const c of conns) await c.close();
    await proxy.stop();
    await Promise.all(backends.map((b) => b.stop()));
    await Deno.remove(certs.dir, { recursive: true });
  }
});

Deno.test("proxy --tls-*: half a pair or a mismatched key exits 2 with a clear message", async () => {
  if (skipWithoutOpenssl("proxy TLS flags")) return;
  const certs = await makeCerts();
  const base = ["proxy", "-l", "127.0.0.1", "-p", "0", "-s", "127.0.0.1:1"];
  try {
    let r = await runMemrep([...base, "--tls-cert", certs.cert]);
    equal(r.code, 2, r.stderr);
    match(r.stderr, /--tls-cert and --tls-key go together/);
    r = await runMemrep([...base, "--tls-cert", certs.cert, "--tls-key", certs.otherKey]);
    equal(r.code, 2, r.stderr);
    match(r.stderr, /Error loading the certificate chain and key: .*other\.key : /);
  } finally {
    await Deno.remove(certs.dir, { recursive: true });
  }
});

Deno.test("proxy --backend-tls-ca: TLS to a memcached -Z and a memrep serve -Z backend; trusting another CA stores nothing", async () => {
  if (skipWithoutOpenssl("proxy backend TLS")) return;
  const [certs, other] = await Promise.all([makeCerts(), makeCerts()]);
  const tlsArgs = ["-Z", "-o", `ssl_chain_cert=${certs.cert},ssl_key=${certs.key}`];
  const backends = await Promise.all([startMemcached(tlsArgs), startMemrep(["serve", ...tlsArgs])]);
  const servers = backends.flatMap((b) => ["-s", `127.0.0.1:${b.port}`]);
  const proxy = await startMemrep(["proxy", ...servers, "--backend-tls-ca", certs.ca]);
  const wrong = await startMemrep(["proxy", ...servers, "--backend-tls-ca", other.ca]);
  try {
    const c = await connect(proxy.port);
    const seed = Math.floor(Math.random() * 1e9);
    for (let i = 0; i < 60; i++) {
      equal(await c.request(`set k${i} 0 0 ${String(seed).length}\r\n${seed}`), "STORED\r\n");
    }
    let wrongValues = 0;
    for (let i = 0; i < 60; i++) {
      const got = await c.request(`get k${i}`, "END\r\n");
      if (got !== `VALUE k${i} 0 ${String(seed).length}\r\n${seed}\r\nEND\r\n`) wrongValues++;
    }
    equal(wrongValues, 0);
    // Both backends hold some: memcached -Z and memrep -Z both took TLS from the proxy.
    for (const b of backends) {
      const t = await connectTls(b.port, certs.caPem);
      ok(Number((await t.stats()).get("curr_items")) > 0, `${b.name} got nothing`);
      await t.close();
    }
    await c.close();
    // A proxy trusting another CA reaches no backend: nothing is stored through it.
    const w = await connect(wrong.port);
    const reply = await w.request("set x 0 0 1\r\n1", "\r\n", 10_000);
    ok(reply !== "STORED\r\n", `stored through an untrusted backend: ${reply}`);
    await w.close();
  } finally {
    await Promise.all([proxy.stop(), wrong.stop()]);
    await Promise.all(backends.map((b) => b.stop()));
    await Deno.remove(certs.dir, { recursive: true });
    await Deno.remove(other.dir, { recursive: true });
  }
});

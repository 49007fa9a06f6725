/**
 * `memrep serve -Z` (memcached's TLS flags) as a process, with certificates
 * made by openssl at test start: Deno and pymemcache TLS clients, -t 2,
 * plain clients turned away, `notls:` listeners, `stats settings`, and the
 * startup refusals.
 * @module
 */

import {
  type Certs,
  connect,
  connectTls,
  equal,
  freePort,
  makeCerts,
  match,
  ok,
  type ProcessHandle,
  runMemrep,
  skipWithoutOpenssl,
  startMemrep,
  type TestConn,
} from "../helpers/mod.ts";

const PYTHON = "/usr/bin/python3";

/** `serve -Z -t threads` with a plain `notls:` listener; resolved once every thread listens. */
async function startTls(
  certs: Certs,
  threads: number,
  plainPort: number,
  extra: string[] = [],
): Promise<ProcessHandle> {
  const server = await startMemrep([
    "serve",
    "-vv",
    "-t",
    String(threads),
    "-l",
    `127.0.0.1,notls:127.0.0.1:${plainPort}`,
    "-Z",
    "-o",
    `ssl_chain_cert=${certs.cert},ssl_key=${certs.key}`,
    ...extra,
  ]);
  const s = threads === 1 ? "" : "s";
  await server.waitForLog(new RegExp(`^memrep serve: listening on .*, ${threads} thread${s}$`));
  return server;
}

Deno.test("serve -Z -t 2: TLS clients share the cache, plain clients on the TLS port get nothing, notls: serves plain", async () => {
  if (skipWithoutOpenssl("serve -Z -t 2")) return;
  const certs = await makeCerts();
  const plainPort = freePort();
  const server = await startTls(certs, 2, plainPort, ["-o", "ssl_ca_cert=" + certs.ca]);
  const conns: TestConn[] = [];
  try {
    // SO_REUSEPORT spreads connections over both threads: open plenty.
    for (let i = 0; i < 16; i++) conns.push(await connectTls(server.port, certs.caPem));
    const seed = Math.floor(Math.random() * 1e9);
    const value = (i: number) => `v${seed}-${i}-`.repeat(1 + (i * 37) % 200);
    for (let i = 0; i < 64; i++) {
      const v = value(i);
      equal(await conns[i % 16].request(`set k${i} ${i} 0 ${v.length}\r\n${v}`), "STORED\r\n");
    }
    let wrong = 0;
    for (let i = 0; i < 64; i++) {
      const v = value(i);
      const got = await conns[(i * 5 + 3) % 16].request(`get k${i}`, "END\r\n");
      if (got !== `VALUE k${i} ${i} ${v.length}\r\n${v}\r\nEND\r\n`) wrong++;
    }
    equal(wrong, 0, "values read back wrong over TLS");
    // A large value crosses many TLS records.
    const big = "x".repeat(500_000);
    equal(await conns[1].request(`set big 0 0 ${big.length}\r\n${big}`), "STORED\r\n");
    equal(
      await conns[2].request("get big", "END\r\n", 10_000),
      `VALUE big 0 ${big.length}\r\n${big}\r\nEND\r\n`,
    );

    const settings = await conns[0].stats("settings");
    equal(settings.get("ssl_enabled"), "yes");
    equal(settings.get("ssl_chain_cert"), certs.cert);
    equal(settings.get("ssl_key"), certs.key);
    equal(settings.get("ssl_verify_mode"), "0");
    equal(settings.get("ssl_ca_cert"), certs.ca);
    equal(settings.get("ssl_min_version"), "tlsv1.2");
    equal(settings.get("num_threads"), "2");

    // Plain text on the TLS port: no reply, the connection is closed.
    for (let i = 0; i < 4; i++) {
      const plain = await connect(server.port);
      await plain.send("version\r\n");
      const got = await plain.readIdle(300, 5000);
      // memcached resets; rustls first sends a TLS alert record (type 21). No memcached reply.
      ok(got.length === 0 || got[0] === 21, `not a TLS alert: ${[...got.subarray(0, 8)]}`);
      ok(!new TextDecoder().decode(got).includes("VERSION"), "a plaintext client was served");
      ok(plain.eof, "the TLS port kept a plaintext connection open");
      await plain.close();
    }

    // The notls: listener speaks plain text and sees the same cache.
    const plain = await connect(plainPort);
    try {
      const v = value(7);
      equal(await plain.request("get k7", "END\r\n"), `VALUE k7 7 ${v.length}\r\n${v}\r\nEND\r\n`);
      equal(await plain.request("set fromplain 0 0 2\r\nok"), "STORED\r\n");
      equal(
        await conns[9].request("get fromplain", "END\r\n"),
        "VALUE fromplain 0 2\r\nok\r\nEND\r\n",
      );
    } finally {
      await plain.close();
    }
    ok(!server.exited(), "server died");
  } finally {
    for (const c of conns) await c.close();
    await server.stop();
    await Deno.remove(certs.dir, { recursive: true });
  }
});

Deno.test("serve -Z: pymemcache's own test_tls and a pymemcache TLS client with many keys", async () => {
  if (skipWithoutOpenssl("serve -Z pymemcache")) return;
  const suite = "/usr/lib/python3/dist-packages/pymemcache/test/test_integration.py";
  try {
    Deno.statSync(suite);
  } catch {
    console.log(`SKIP (${suite} not installed): serve -Z pymemcache`);
    return;
  }
  const certs = await makeCerts();
  const server = await startTls(certs, 1, freePort());
  try {
    // pymemcache's test_tls, with its tls_context fixture pointed at this CA.
    await Deno.writeTextFile(
      `${certs.dir}/conftest.py`,
      `from pymemcache.test.conftest import *  # noqa
import ssl, pytest

@pytest.fixture(scope="session")
def tls_context():
    return ssl.create_default_context(cafile=${JSON.stringify(certs.ca)})
`,
    );
    await Deno.writeTextFile(
      `${certs.dir}/test_memrep_tls.py`,
      "from pymemcache.test.test_integration import test_tls  # noqa\n",
    );
    const pytest = await new Deno.Command(PYTHON, {
      args: [
        ...["-m", "pytest", "test_memrep_tls.py", "-q", "-p", "no:cacheprovider"],
        ...["--tls-server", "127.0.0.1", "--tls-port", String(server.port)],
        ...["-W", "ignore::pytest.PytestUnknownMarkWarning"],
      ],
      cwd: certs.dir,
      env: { PYTHONDONTWRITEBYTECODE: "1" },
      stdout: "piped",
      stderr: "piped",
    }).output();
    const report = new TextDecoder().decode(pytest.stdout) +
      new TextDecoder().decode(pytest.stderr);
    equal(pytest.code, 0, `pymemcache test_tls failed:\n${report}`);
    match(report, /\d+ passed/);
    ok(!/\d+ (failed|error)/.test(report), report);

    const script = `
import random, ssl, sys
from pymemcache.client.base import Client
ctx = ssl.create_default_context(cafile=sys.argv[2])
c = Client(("127.0.0.1", int(sys.argv[1])), tls_context=ctx)
rnd = random.Random(int(sys.argv[3]))
data = {("k%d" % i).encode(): bytes(rnd.randrange(256) for _ in range(rnd.randrange(1, 3000))) for i in range(300)}
for k, v in data.items():
    assert c.set(k, v, noreply=False)
got = c.get_many(list(data))
bad = sum(1 for k, v in data.items() if got.get(k) != v)
print("bad", bad, "count", len(got))
`;
    const seed = String(Math.floor(Math.random() * 1e9));
    const out = await new Deno.Command(PYTHON, {
      args: ["-c", script, String(server.port), certs.ca, seed],
      stdout: "piped",
      stderr: "piped",
    }).output();
    const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
    equal(out.code, 0, text);
    equal(text.trim(), "bad 0 count 300", `seed ${seed}`);
  } finally {
    await server.stop();
    await Deno.remove(certs.dir, { recursive: true });
  }
});

Deno.test("serve -Z: the key may sit in the chain file; stats settings without -Z say ssl_enabled no", async () => {
  if (skipWithoutOpenssl("serve -Z combined pem")) return;
  const certs = await makeCerts();
  const server = await startMemrep(["serve", "-Z", "-o", `ssl_chain_cert=${certs.combined}`]);
  const off = await startMemrep(["serve"]);
  try {
    const c = await connectTls(server.port, certs.caPem);
    equal(await c.request("set a 0 0 1\r\n1"), "STORED\r\n");
    equal((await c.stats("settings")).get("ssl_key"), "(null)");
    await c.close();
    const p = await connect(off.port);
    const s = await p.stats("settings");
    equal(s.get("ssl_enabled"), "no");
    equal(s.get("ssl_chain_cert"), "(null)");
    equal(s.get("ssl_ca_cert"), "NULL");
    await p.close();
  } finally {
    await server.stop();
    await off.stop();
    await Deno.remove(certs.dir, { recursive: true });
  }
});

Deno.test("serve -Z refuses bad certificate material and unsupported options with exit 2 and a clear message", async () => {
  if (skipWithoutOpenssl("serve -Z refusals")) return;
  const certs = await makeCerts();
  const base = ["serve", "-l", "127.0.0.1", "-p", String(freePort()), "-Z"];
  const cases: Array<[string[], RegExp]> = [
    [[], /^Error loading the certificate chain: \(null\) : no file given/],
    [
      ["-o", `ssl_chain_cert=${certs.dir}/missing.crt,ssl_key=${certs.key}`],
      /^Error loading the certificate chain: .*missing\.crt : .*No such file/,
    ],
    [
      ["-o", `ssl_chain_cert=${certs.cert},ssl_key=${certs.dir}/missing.key`],
      /^Error loading the key: .*missing\.key : .*No such file/,
    ],
    [["-o", `ssl_chain_cert=${certs.cert}`], /^Error loading the key: .*server\.crt : no PEM/],
    [
      ["-o", `ssl_chain_cert=${certs.cert},ssl_key=${certs.otherKey}`],
      /^Error loading the certificate chain and key: .*other\.key : /,
    ],
    [
      ["-o", `ssl_chain_cert=${certs.cert},ssl_key=${certs.key},ssl_ca_cert=${certs.dir}/no.crt`],
      /^Error loading the CA certificate: .*no\.crt : /,
    ],
    [
      ["-o", `ssl_chain_cert=${certs.cert},ssl_key=${certs.key},ssl_verify_mode=1`],
      /^memrep serve: ssl_verify_mode=1: memrep cannot verify client certificates/,
    ],
    [["-o", "ssl_verify_mode=9"], /^Invalid ssl_verify_mode\. Use help to see valid options\.$/],
    [["-o", "ssl_verify_mode=x"], /^could not parse argument to ssl_verify_mode$/],
    [
      ["-o", `ssl_chain_cert=${certs.cert},ssl_key=${certs.key},ssl_ciphers=HIGH`],
      /^memrep serve: ssl_ciphers: memrep cannot choose ciphers/,
    ],
    [["-s", `${certs.dir}/sock`], /^ERROR: You cannot enable SSL without a TCP port\.$/],
  ];
  try {
    for (const [args, message] of cases) {
      const r = await runMemrep([...base, ...args]);
      equal(r.code, 2, `${args.join(" ")}: ${r.stderr}`);
      match(r.stderr.trim(), message, args.join(" "));
    }
  } finally {
    await Deno.remove(certs.dir, { recursive: true });
  }
});

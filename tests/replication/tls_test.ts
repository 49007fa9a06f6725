/**
 * The replication link over TLS (--repl-tls-cert/--repl-tls-key/--repl-tls-ca),
 * certificates made by openssl: a pair converges over it, the listener
 * speaks only TLS, a dialer refuses a certificate its CA did not sign, and
 * bad flags stop serve at startup.
 * @module
 */

import {
  connect,
  equal,
  eventually,
  freePort,
  makeCerts,
  match,
  ok,
  runMemrep,
  skipWithoutOpenssl,
} from "../helpers/mod.ts";
import {
  client,
  type Node,
  replStat,
  replStats,
  sameContents,
  settled,
  startNode,
} from "./pair.ts";

const enc = new TextEncoder();

Deno.test("replication over TLS: a pair converges, the link port speaks only TLS", async () => {
  if (skipWithoutOpenssl("replication over TLS")) return;
  const certs = await makeCerts();
  const tls = [
    ...["--repl-tls-cert", certs.cert, "--repl-tls-key", certs.key, "--repl-tls-ca", certs.ca],
    ...["--repl-secret-file", `${certs.dir}/secret`],
  ];
  await Deno.writeTextFile(`${certs.dir}/secret`, `s${Math.random()}\n`);
  const replPort = freePort();
  const nodes: Node[] = [];
  try {
    const a = await startNode(replPort, tls);
    nodes.push(a);
    await a.proc.waitForLog(/^replication: listen/, 10_000);
    // Plain bytes on the listening link port: a failed TLS handshake is counted, nothing is said.
    const plain = await connect(replPort);
    await plain.send("MEMREP hello\r\n");
    const got = await plain.readIdle(300, 5000);
    ok(got.length === 0 || got[0] === 21, `not a TLS alert: ${[...got.subarray(0, 8)]}`);
    await plain.close();
    await eventually(async () => (await replStat(a, "repl_tls_failures")) >= 1, true);
    const b = await startNode(replPort, tls);
    nodes.push(b);
    await Promise.all([
      a.proc.waitForLog(/^replication: start/, 10_000),
      b.proc.waitForLog(/^replication: start/, 10_000),
    ]);
    const seed = Math.floor(Math.random() * 1e9);
    const [ca, cb] = await Promise.all([client(a), client(b)]);
    for (let i = 0; i < 150; i++) {
      const v = enc.encode(`${seed}:${i}:`.repeat(1 + (i * 13) % 300));
      await (i % 2 ? ca : cb).set(`k${i}`, v);
    }
    await settled(a, b);
    equal((await sameContents(a, b)).size, 150);
    equal(await replStat(b, "repl_tls_failures"), 0);

    ca.close();
    cb.close();
  } finally {
    await Promise.all(nodes.map((n) => n.proc.stop()));
    await Deno.remove(certs.dir, { recursive: true });
  }
});

Deno.test("replication over TLS: a dialer refuses a peer certificate its --repl-tls-ca did not sign", async () => {
  if (skipWithoutOpenssl("replication TLS wrong CA")) return;
  const [mine, other] = await Promise.all([makeCerts(), makeCerts()]);
  const replPort = freePort();
  const nodes: Node[] = [];
  try {
    const a = await startNode(replPort, [
      ...["--repl-tls-cert", mine.cert, "--repl-tls-key", mine.key, "--repl-tls-ca", mine.ca],
    ]);
    nodes.push(a);
    await a.proc.waitForLog(/^replication: listen/, 10_000);
    // At startup a certificate the CA did not sign is a configuration mistake: exit 2.
    const b = await runMemrep([
      ...["serve", "-l", "127.0.0.1", "-p", String(freePort())],
      ...["-x", "127.0.0.1", "-X", String(replPort)],
      ...["--repl-tls-cert", other.cert, "--repl-tls-key", other.key, "--repl-tls-ca", other.ca],
    ]);
    equal(b.code, 2, b.stderr);
    match(b.stderr, /replication: TLS with the peer at 127\.0\.0\.1:\d+ failed: .*certificate/i);
    // The listener saw the dialer give up on the handshake; no link was made.
    await eventually(async () => (await replStat(a, "repl_tls_failures")) >= 1, true);
    equal((await replStats(a)).get("repl_link") === "up", false);
  } finally {
    await Promise.all(nodes.map((n) => n.proc.stop()));
    await Deno.remove(mine.dir, { recursive: true });
    await Deno.remove(other.dir, { recursive: true });
  }
});

Deno.test("serve --repl-tls-*: missing pieces and bad files exit 2 with a clear message", async () => {
  if (skipWithoutOpenssl("replication TLS flags")) return;
  const certs = await makeCerts();
  const base = ["serve", "-l", "127.0.0.1", "-p", String(freePort())];
  const repl = ["--replicate", `127.0.0.1:${freePort()}`];
  const cases: Array<[string[], RegExp]> = [
    [["--repl-tls-cert", certs.cert], /^memrep serve: --repl-tls-cert needs --replicate/],
    [
      [...repl, "--repl-tls-cert", certs.cert],
      /^memrep serve: --repl-tls-cert and --repl-tls-key go together/,
    ],
    [
      [...repl, "--repl-tls-cert", `${certs.dir}/none.crt`, "--repl-tls-key", certs.key],
      /^memrep serve: --repl-tls-cert: Error loading the certificate: .*none\.crt : .*No such file/,
    ],
    [
      [...repl, "--repl-tls-cert", certs.cert, "--repl-tls-key", certs.otherKey],
      /^memrep serve: --repl-tls-cert\/--repl-tls-key: Error loading the certificate chain and key: /,
    ],
    [
      [
        ...repl,
        "--repl-tls-cert",
        certs.cert,
        "--repl-tls-key",
        certs.key,
        "--repl-tls-ca",
        certs.key,
      ],
      /^memrep serve: --repl-tls-ca: Error loading the certificate: .* no PEM CERTIFICATE/,
    ],
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

/**
 * `memrep serve` as a process: memory limits and eviction, expiry, CAS
 * races, robustness against bad input, many connections, signals, flags.
 * @module
 */

import {
  connect,
  connectAdmitted,
  deepEqual,
  equal,
  equalBytes,
  freePort,
  ignoreUnless,
  match,
  memrepCommand,
  ok,
  runMemrep,
  startMemcached,
  startMemrep,
} from "../helpers/mod.ts";

Deno.test("serve evicts least recently used items under -m 1 and counts evictions", async () => {
  const server = await startMemrep(["serve", "-m", "1", "-I", "512k"]);
  const c = await connect(server.port);
  try {
    const value = "v".repeat(1000);
    for (let i = 0; i < 3000; i++) {
      await c.send(`set key${i} 0 0 ${value.length} noreply\r\n${value}\r\n`);
    }
    equal(await c.request(`get key2999`, "END\r\n"), `VALUE key2999 0 1000\r\n${value}\r\nEND\r\n`);
    equal(await c.request(`get key0`, "END\r\n"), "END\r\n");
    const s = await c.stats();
    ok(Number(s.get("evictions")) > 0, `evictions: ${s.get("evictions")}`);
    ok(Number(s.get("curr_items")) < 3000);
    equal(s.get("limit_maxbytes"), String(1048576));
  } finally {
    await c.close();
    await server.stop();
  }
});

Deno.test("serve -M answers out of memory instead of evicting, and keeps old data", async () => {
  const server = await startMemrep(["serve", "-m", "1", "-I", "512k", "-M"]);
  const c = await connect(server.port);
  try {
    const value = "v".repeat(1000);
    let refused = "";
    for (let i = 0; i < 3000 && !refused; i++) {
      const r = await c.request(`set key${i} 0 0 ${value.length}\r\n${value}\r\n`);
      if (r !== "STORED\r\n") refused = r;
    }
    equal(refused, "SERVER_ERROR out of memory storing object\r\n");
    equal(await c.request("get key0", "END\r\n"), `VALUE key0 0 1000\r\n${value}\r\nEND\r\n`);
  } finally {
    await c.close();
    await server.stop();
  }
});

Deno.test("serve expires items after their TTL and honours absolute exptimes", async () => {
  const server = await startMemrep(["serve"]);
  const c = await connect(server.port);
  try {
    const future = Math.floor(Date.now() / 1000) + 100;
    equal(await c.request("set short 0 1 1\r\na"), "STORED\r\n");
    equal(await c.request(`set abs 0 ${future} 1\r\nb`), "STORED\r\n");
    equal(await c.request("set past 0 -1 1\r\nc"), "STORED\r\n");
    equal(await c.request("get past", "END\r\n"), "END\r\n");
    const ttl = await c.request("mg abs t", "\r\n");
    match(ttl, /^HD t(99|100|101)\r\n$/);
    await new Promise((r) => setTimeout(r, 2100));
    equal(await c.request("get short", "END\r\n"), "END\r\n");
    equal(await c.request("get abs", "END\r\n"), "VALUE abs 0 1\r\nb\r\nEND\r\n");
  } finally {
    await c.close();
    await server.stop();
  }
});

Deno.test("serve lets exactly one of two racing cas updates win", async () => {
  const server = await startMemrep(["serve"]);
  const a = await connect(server.port), b = await connect(server.port);
  try {
    equal(await a.request("set k 0 0 1\r\n0"), "STORED\r\n");
    const cas = /VALUE k 0 1 (\d+)/.exec(await a.request("gets k", "END\r\n"))![1];
    const [ra, rb] = await Promise.all([
      a.request(`cas k 0 0 1 ${cas}\r\nA`),
      b.request(`cas k 0 0 1 ${cas}\r\nB`),
    ]);
    equal([ra, rb].sort().join(""), "EXISTS\r\nSTORED\r\n");
    const winner = ra === "STORED\r\n" ? "A" : "B";
    equal(await a.request("get k", "END\r\n"), `VALUE k 0 1\r\n${winner}\r\nEND\r\n`);
  } finally {
    await a.close();
    await b.close();
    await server.stop();
  }
});

Deno.test("serve survives binary garbage, oversize lines and abrupt disconnects without losing data", async () => {
  const server = await startMemrep(["serve"]);
  const keeper = await connect(server.port);
  try {
    equal(await keeper.request("set safe 7 0 4\r\nkeep"), "STORED\r\n");
    // Random bytes, then hang up mid-stream.
    const junk = await connect(server.port);
    const bytes = new Uint8Array(64 * 1024);
    for (let i = 0; i < bytes.length; i += 65536) {
      crypto.getRandomValues(bytes.subarray(i, i + 65536));
    }
    await junk.send(bytes).catch(() => {});
    await junk.close();
    // A line of 10 KB without a newline that is not a get: memcached closes.
    const long = await connect(server.port);
    await long.send("x".repeat(10_000));
    ok(await long.waitClosed(3000), "connection with an endless line is closed");
    await long.close();
    // Half a command, then disconnect.
    const half = await connect(server.port);
    await half.send("set half 0 0 10\r\nabc");
    await half.close();
    // A declared length far above -I: refused, the data swallowed, the connection usable.
    const big = await connect(server.port);
    const huge = "z".repeat(2 * 1048576);
    equal(
      await big.request(`set huge 0 0 ${huge.length}\r\n${huge}\r\nget safe`, "END\r\n"),
      "SERVER_ERROR object too large for cache\r\nVALUE safe 7 4\r\nkeep\r\nEND\r\n",
    );
    await big.close();
    equal(await keeper.request("get safe half", "END\r\n"), "VALUE safe 7 4\r\nkeep\r\nEND\r\n");
  } finally {
    await keeper.close();
    await server.stop();
  }
});

Deno.test("serve parses commands split at every byte and pipelined in one write", async () => {
  const server = await startMemrep(["serve"]);
  const c = await connect(server.port);
  try {
    await c.sendSlowly("set a 1 0 5\r\nhello\r\nget a\r\n", 1, 0);
    equal(await c.readUntilText("END\r\n"), "STORED\r\nVALUE a 1 5\r\nhello\r\nEND\r\n");
    let batch = "";
    for (let i = 0; i < 500; i++) batch += `set p${i} 0 0 1\r\n${i % 10}\r\nincr p${i} 1\r\n`;
    await c.send(batch);
    let expected = "";
    for (let i = 0; i < 500; i++) expected += `STORED\r\n${(i % 10) + 1}\r\n`;
    equal(
      await c.readUntilText((b) => (b.length >= expected.length ? expected.length : -1), 5000),
      expected,
    );
  } finally {
    await c.close();
    await server.stop();
  }
});

Deno.test("serve holds thousands of connections and refuses those over -c", async () => {
  // One thread: the limit is exact there (threads count each other's connections as they accept).
  const server = await startMemrep(["serve", "-t", "1", "-c", "1500"]);
  const conns: Deno.TcpConn[] = [];
  try {
    for (let i = 0; i < 1500; i++) {
      conns.push(await Deno.connect({ hostname: "127.0.0.1", port: server.port }));
    }
    const extra = await connect(server.port);
    equal(await extra.readUntilText("\r\n"), "ERROR Too many open connections\r\n");
    await extra.close();
    conns.pop()!.close();
    await (await connectAdmitted(server.port)).close();
  } finally {
    for (const c of conns) c.close();
    await server.stop();
  }
});

Deno.test("serve stops cleanly on SIGTERM and removes its pidfile", async () => {
  const pidfile = await Deno.makeTempFile();
  const server = await startMemrep(["serve", "-P", pidfile]);
  equal(Deno.readTextFileSync(pidfile).trim(), String(server.pid));
  server.kill("SIGTERM");
  const status = await server.status;
  equal(status.code, 0);
  ok(!(await Deno.stat(pidfile).then(() => true, () => false)), "pidfile removed");
});

Deno.test("serve shutdown needs -A, as in memcached", async () => {
  const server = await startMemrep(["serve", "-A"]);
  const c = await connect(server.port);
  try {
    await c.send("shutdown\r\n");
    ok(await c.waitClosed(3000));
    equal((await server.status).code, 0);
  } finally {
    await c.close();
    await server.stop();
  }
});

Deno.test("serve -d returns at once and leaves the server running; with -v it logs here (seed's repcached -v -d)", async () => {
  const pidfile = await Deno.makeTempFile();
  const port = freePort(), replPort = freePort();
  // The seed's line: ./memcached -v -u root -d -l 127.0.0.1 -p 11211 -x 127.0.0.1 -X 11111
  const { cmd, args } = memrepCommand();
  const proc = new Deno.Command(cmd, {
    args: [...args, "serve", "-v", "-u", "root", "-d", "-l", "127.0.0.1", "-p", String(port)]
      .concat(["-x", "127.0.0.1", "-X", String(replPort), "-P", pidfile]),
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  const stderr = new Response(proc.stderr).text(); // ends when the daemon ends
  let pid = 0;
  try {
    equal((await proc.status).code, 0);
    const c = await connect(port);
    equal(await c.request("set k 0 0 1\r\nx"), "STORED\r\n");
    await c.close();
    pid = Number(Deno.readTextFileSync(pidfile).trim());
    ok(pid > 0, "the daemon wrote its pid before it answered");
  } finally {
    if (pid > 0) Deno.kill(pid, "SIGTERM");
    else await proc.stderr.cancel().catch(() => {});
  }
  // What the terminal showed: the background server's own lines, as repcached printed them.
  const lines = (await stderr).split("\n");
  ok(lines.includes(`replication: connect (peer=127.0.0.1:${replPort})`), lines.join("\n"));
  ok(lines.includes("replication: listen"), lines.join("\n"));
  equal(lines.filter((l) => l.includes("-u root ignored")).length, 1, lines.join("\n"));
  ok(!lines.some((l) => l.includes("Warning")), `only memrep's own lines: ${lines.join("\n")}`);
});

Deno.test("serve -d without -v detaches from the terminal", async () => {
  const port = freePort();
  const r = await runMemrep(["serve", "-d", "-l", "127.0.0.1", "-p", String(port)]);
  equal(r.code, 0, r.stderr);
  equal(r.stderr, ""); // runMemrep returned: nothing holds its stderr open
  const c = await connect(port);
  const pid = Number(/STAT pid (\d+)/.exec(await c.request("stats", "END\r\n"))?.[1]);
  await c.close();
  ok(pid > 0);
  Deno.kill(pid, "SIGTERM");
});

Deno.test("serve rejects bad flags with a message and exit code 2", async () => {
  for (
    const args of [
      ["serve", "--bogus"],
      ["serve", "-p", "notaport"],
      ["serve", "-I", "5x"],
      ["serve", "-B", "udp"],
      ["serve", "--replicate", "nohostport:"],
      ["frobnicate"],
    ]
  ) {
    const r = await runMemrep(args);
    equal(r.code, 2, `${args.join(" ")}: ${r.stderr}`);
    ok(r.stderr.trim().length > 0, `message for ${args.join(" ")}`);
  }
  equalBytes((await runMemrep(["--version"])).stdout.trim(), "memrep 0.1.0");
});

Deno.test("serve metadump lists every item, and other connections are served while it is unread", async () => {
  const server = await startMemrep(["serve", "-t", "1", "-m", "256"]);
  const loader = await connect(server.port), other = await connect(server.port);
  // A raw socket that is not read until the end: the dump (about 28 MB) cannot
  // fit in the loopback buffers, so it is provably unfinished while `other` is served.
  const dumper = await Deno.connect({ hostname: "127.0.0.1", port: server.port });
  try {
    const n = 400_000;
    for (let i = 0; i < n; i += 10_000) {
      let batch = "";
      for (let j = i; j < i + 10_000; j++) batch += `set key${j} 0 0 1 noreply\r\nx\r\n`;
      await loader.request(batch + "mn", "MN\r\n", 10_000);
    }
    await dumper.write(new TextEncoder().encode("lru_crawler metadump all\r\n"));
    equal(await other.request("get key7", "END\r\n"), "VALUE key7 0 1\r\nx\r\nEND\r\n");
    equal(await other.request("set late 0 0 1\r\ny", "\r\n"), "STORED\r\n");
    const chunks: string[] = [];
    const buf = new Uint8Array(1 << 20), dec = new TextDecoder();
    for (let tail = ""; !tail.endsWith("END\r\n");) {
      const got = await dumper.read(buf);
      if (got === null) throw new Error("server closed the dump early");
      chunks.push(dec.decode(buf.subarray(0, got), { stream: true }));
      tail = (tail + chunks.at(-1)).slice(-5);
    }
    const keys = chunks.join("").split("\n").filter((l) => l.startsWith("key=key")).length;
    equal(keys, n);
  } finally {
    await loader.close();
    await other.close();
    dumper.close();
    await server.stop();
  }
});

Deno.test("serve on a port that is taken exits with code 2, with one thread or several", async () => {
  const first = await startMemrep(["serve", "-t", "2"]);
  try {
    for (const threads of ["1", "2"]) {
      // SO_REUSEPORT (used for threads) must not let a second server share the port.
      const r = await runMemrep([
        "serve",
        "-t",
        threads,
        "-l",
        "127.0.0.1",
        "-p",
        String(first.port),
      ]);
      equal(r.code, 2, r.stderr);
      match(r.stderr, /cannot listen on 127\.0\.0\.1:\d+: .*in use/i);
    }
    const c = await connect(first.port);
    equal(await c.request("version"), "VERSION 1.6.18\r\n");
    await c.close();
  } finally {
    await first.stop();
  }
});

Deno.test("serve prepend on the LRU tail under -m 1 keeps its source intact", async () => {
  const server = await startMemrep(["serve", "-t", "1", "-m", "1", "-I", "512k"]);
  const c = await connect(server.port);
  try {
    const value = (i: number) => String(i).padStart(500, "0");
    let n = 0;
    while ((await c.stats()).get("evictions") === "0") {
      let batch = "";
      for (let j = 0; j < 100; j++, n++) batch += `set k${n} 0 0 500 noreply\r\n${value(n)}\r\n`;
      await c.request(batch + "mn", "MN\r\n");
    }
    // The oldest survivor is the LRU tail; `me` looks without bumping it.
    let tail = 0;
    while ((await c.request(`me k${tail}`)).startsWith("EN")) tail++;
    equal(await c.request(`prepend k${tail} 0 0 1\r\nX`), "STORED\r\n");
    equal(
      await c.request(`get k${tail}`, "END\r\n"),
      `VALUE k${tail} 0 501\r\nX${value(tail)}\r\nEND\r\n`,
    );
  } finally {
    await c.close();
    await server.stop();
  }
});

Deno.test({
  name:
    "serve answers version exactly as memcached 1.6.18 and reports its own in stats memrep_version",
  ignore: ignoreUnless("serve version", ["memcached"]),
  async fn() {
    const ref = await startMemcached([]);
    const server = await startMemrep(["serve", "-U", "0"]);
    const a = await connect(ref.port), b = await connect(server.port);
    try {
      equal(await b.request("version"), await a.request("version"));
      equal(await b.request("version"), "VERSION 1.6.18\r\n");
      match((await b.stats("memrep")).get("memrep_version") ?? "", /^\d+\.\d+\.\d+/);
    } finally {
      await Promise.all([a.close(), b.close()]);
      await Promise.all([ref.stop(), server.stop()]);
    }
  },
});

Deno.test({
  name:
    "serve's general stats have memcached 1.6.18's names, in its order, under the settings that add or drop lines",
  ignore: ignoreUnless("serve stats names", ["memcached"]),
  async fn() {
    // memcached's t/stats.t counts them; the crawler, maintainer, slab mover and idle_timeout
    // settings each add or drop lines. memrep's own lines are in `stats memrep`.
    for (
      const args of [
        [],
        ["-o", "idle_timeout=5"],
        ["-o", "no_lru_crawler,no_lru_maintainer"],
        ["-o", "no_slab_reassign,no_lru_crawler"],
      ]
    ) {
      const ref = await startMemcached(args);
      const server = await startMemrep(["serve", "-U", "0", ...args]);
      const a = await connect(ref.port), b = await connect(server.port);
      try {
        deepEqual([...(await b.stats()).keys()], [...(await a.stats()).keys()], args.join(" "));
        for (const c of [a, b]) equal(await c.request("set k 0 0 1\r\nx\r\n"), "STORED\r\n");
        const items = async (c: typeof a) => [...(await c.stats("items")).keys()];
        deepEqual(await items(b), await items(a), `${args.join(" ")}: stats items`);
        // A disabled crawler's lines go (memcached stops its thread first, so comparing
        // right after the reply races with it).
        await b.request("lru_crawler disable");
        ok(!(await b.stats()).has("lru_crawler_running"), "crawler disabled");
      } finally {
        await Promise.all([a.close(), b.close()]);
        await Promise.all([ref.stop(), server.stop()]);
      }
    }
  },
});

Deno.test({
  name: "serve stats cachedump lists every class's keys, so memcdump dumps them",
  ignore: ignoreUnless("serve memcdump", ["memcdump"]),
  async fn() {
    const server = await startMemrep(["serve", "-U", "0"]);
    const c = await connect(server.port);
    try {
      const keys = new Set<string>();
      const seed = Math.floor(Math.random() * 1e9);
      for (let i = 0; i < 300; i++) {
        const key = `dump:${seed}:${i}`;
        keys.add(key);
        const v = "x".repeat((i * 97) % 5000); // many slab classes
        await c.send(`set ${key} 0 0 ${v.length} noreply\r\n${v}\r\n`);
      }
      // A base64 (binary) key is left out, as memcached does.
      await c.send("ms AAE= 1 b q\r\nx\r\n");
      equal(await c.request("mn"), "MN\r\n");
      const one = await c.request("stats cachedump 1 0", "END\r\n");
      match(one, /^(ITEM \S+ \[\d+ b; 0 s\]\r\n)*END\r\n$/);
      const out = await new Deno.Command("memcdump", {
        args: [`--servers=127.0.0.1:${server.port}`],
        stdout: "piped",
        stderr: "piped",
      }).output();
      equal(out.code, 0, new TextDecoder().decode(out.stderr));
      const listed = new TextDecoder().decode(out.stdout).split("\n").filter((l) => l !== "");
      equal(listed.length, keys.size, "each key once, the binary one left out");
      equal(listed.filter((k) => !keys.has(k)).length, 0, "no unknown keys");
    } finally {
      await c.close();
      await server.stop();
    }
  },
});

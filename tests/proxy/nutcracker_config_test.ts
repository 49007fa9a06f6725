/**
 * `memrep proxy -c nutcracker.yml`: the same file given to nutcracker and to
 * memrep puts every key on the same server (each hash, ketama and modula,
 * weights, names, hash_tag); several pools in one process; unsupported
 * directives refused; `-t`; the JSON stats port.
 */

import { deepEqual, equal, ok } from "../helpers/assert.ts";
import {
  connect,
  freePort,
  ignoreUnless,
  type ProcessHandle,
  runMemrep,
  startMemcached,
  startMemrep,
  startNutcracker,
  startRelay,
  waitUntil,
} from "../helpers/mod.ts";
import { parseConfig, poolDistribution } from "../../lib/proxy/mod.ts";
import { exchange, fill, locate, readStats, setAll, startConfigProxy } from "./nc_config.ts";

/** A seeded generator, so a failure can be replayed. */
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

/** `n` distinct keys: printable ASCII, some with high (latin-1) bytes, some hash tags. */
function makeKeys(n: number, seed: number, tags = false): string[] {
  const r = rng(seed);
  const keys = new Set<string>();
  while (keys.size < n) {
    const len = 1 + Math.floor(r() * 40);
    let k = "";
    for (let i = 0; i < len; i++) {
      const x = r();
      // Bytes 0x21..0x7e and 0xa1..0xff: no spaces or controls (text protocol).
      k += String.fromCharCode(
        x < 0.85 ? 0x21 + Math.floor(r() * 94) : 0xa1 + Math.floor(r() * 95),
      );
    }
    if (tags) {
      const t = Math.floor(r() * 6);
      if (t === 0) k = `user{${Math.floor(r() * 40)}}:${k}`;
      else if (t === 1) k = `{}${k}`; // empty tag: the whole key is hashed
      else if (t === 2) k = `a{${k}`; // no closing brace
      else if (t === 3) k = `x}{${Math.floor(r() * 40)}}y{z}`;
    }
    keys.add(k);
  }
  return [...keys];
}

function poolYaml(
  hash: string,
  distribution: string,
  servers: string[],
  extra: string[] = [],
): string {
  return [
    "alpha:",
    "  listen: 127.0.0.1:{port}",
    `  hash: ${hash}`,
    `  distribution: ${distribution}`,
    // Generous: nutcracker answers "Connection timed out" to queued requests on a loaded machine.
    "  timeout: 30000",
    "  backlog: 1024",
    "  preconnect: true",
    "  auto_eject_hosts: false",
    "  server_retry_timeout: 2000",
    "  server_failure_limit: 3",
    "  redis: false",
    ...extra.map((e) => `  ${e}`),
    "  servers:",
    ...servers.map((s) => `   - ${s}`),
    "",
  ].join("\n");
}

/**
 * Set `keys` through nutcracker (value "n"), find each on the backends; set
 * them through memrep proxy (value "m") with the same file, find them again:
 * every key must be on the same server, and on exactly one.
 */
async function samePlacement(
  backends: ProcessHandle[],
  yaml: string,
  keys: string[],
  tag = "",
): Promise<void> {
  const ports = backends.map((b) => b.port);
  const nc = await startNutcracker(yaml);
  let where: number[];
  try {
    await setAll(nc.port, keys, `n${tag}`);
    where = await locate(ports, keys, `n${tag}`);
  } finally {
    await nc.stop();
  }
  const lost = where.filter((w) => w < 0).length;
  equal(lost, 0, "keys nutcracker stored on no server or on several");
  const mr = await startConfigProxy(yaml);
  try {
    await setAll(mr.port, keys, `m${tag}`);
    const mine = await locate(ports, keys, `m${tag}`);
    let differ = 0;
    let example = "";
    for (let i = 0; i < keys.length; i++) {
      if (mine[i] !== where[i]) {
        differ++;
        example ||= `${JSON.stringify(keys[i])}: nutcracker ${where[i]}, memrep ${mine[i]}`;
      }
    }
    equal(differ, 0, `keys placed differently from nutcracker (${example})`);
    // Keys spread (the comparison is not vacuous; crc32's 15 bits may miss a ketama server).
    ok(new Set(where).size >= 2, "keys on one server only");
    // The library's own placement agrees too (what the reload test relies on).
    const dist = poolDistribution(parseConfig(fill(yaml, 1))[0]);
    const enc = (k: string) => Uint8Array.from(k, (c) => c.charCodeAt(0));
    const order = parseConfig(fill(yaml, 1))[0].servers.map((s) => ports.indexOf(s.port));
    let libDiffer = 0;
    for (let i = 0; i < keys.length; i++) {
      const b = enc(keys[i]);
      if (order[dist.pick(b, 0, b.length)] !== where[i]) libDiffer++;
    }
    equal(libDiffer, 0, "poolDistribution disagrees with nutcracker");
  } finally {
    await mr.proc.stop();
  }
}

async function withBackends(n: number, fn: (b: ProcessHandle[]) => Promise<void>): Promise<void> {
  const backends = await Promise.all(Array.from({ length: n }, () => startMemcached()));
  try {
    await fn(backends);
  } finally {
    await Promise.all(backends.map((b) => b.stop()));
  }
}

const NEED = ["memcached", "nutcracker"];

const cases: [string, (p: number[]) => string, boolean][] = [
  [
    "ketama md5",
    (p) => poolYaml("md5", "ketama", p.map((x) => `127.0.0.1:${x}:1`)),
    false,
  ],
  [
    "ketama fnv1a_64 with weights and names",
    (p) =>
      poolYaml("fnv1a_64", "ketama", [
        `127.0.0.1:${p[0]}:1`,
        `127.0.0.1:${p[1]}:3 server_b`,
        `127.0.0.1:${p[2]}:2 cache-c`,
      ]),
    false,
  ],
  [
    "ketama murmur",
    (p) => poolYaml("murmur", "ketama", p.map((x, i) => `127.0.0.1:${x}:${i + 1}`)),
    false,
  ],
  [
    // crc32 (15 bits) puts every key on the ring's first point: crc32a spreads.
    "ketama crc32a",
    (p) => poolYaml("crc32a", "ketama", p.map((x) => `127.0.0.1:${x}:1`)),
    false,
  ],
  [
    "modula fnv1a_64 with weights (servers in nutcracker's name order)",
    (p) =>
      poolYaml("fnv1a_64", "modula", [
        `127.0.0.1:${p[2]}:1 zz`,
        `127.0.0.1:${p[0]}:2`,
        `127.0.0.1:${p[1]}:1 b`,
      ]),
    false,
  ],
  [
    "ketama md5 with hash_tag {}",
    (p) => poolYaml("md5", "ketama", p.map((x) => `127.0.0.1:${x}:1`), ['hash_tag: "{}"']),
    true,
  ],
];

for (const [label, yaml, tags] of cases) {
  const name = `nutcracker.yml placement: ${label}: 10000 keys on the same servers as nutcracker`;
  Deno.test({
    name,
    ignore: ignoreUnless(name, NEED),
    sanitizeOps: false,
    sanitizeResources: false,
    async fn() {
      await withBackends(3, async (b) => {
        await samePlacement(b, yaml(b.map((x) => x.port)), makeKeys(10000, label.length, tags));
      });
    },
  });
}

const EVERY_HASH = "nutcracker.yml placement: every hash nutcracker lists, modula over 5 servers";
Deno.test({
  name: EVERY_HASH,
  ignore: ignoreUnless(EVERY_HASH, NEED),
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const hashes = [
      "one_at_a_time",
      "md5",
      "crc16",
      "crc32",
      "crc32a",
      "fnv1_64",
      "fnv1a_64",
      "fnv1_32",
      "fnv1a_32",
      "hsieh",
      "murmur",
      "jenkins",
    ];
    await withBackends(5, async (b) => {
      for (const [i, h] of hashes.entries()) {
        const yaml = poolYaml(h, "modula", b.map((x) => `127.0.0.1:${x.port}:1`));
        await samePlacement(b, yaml, makeKeys(600, 100 + i), String(i));
      }
    });
  },
});

const TWO = "nutcracker.yml: two pools in one process, each on its own listen address";
Deno.test({
  name: TWO,
  ignore: ignoreUnless(TWO, ["memcached"]),
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    await withBackends(2, async ([a, b]) => {
      const yaml = [
        "alpha:",
        "  listen: 127.0.0.1:{port}",
        "  servers:",
        `   - 127.0.0.1:${a.port}:1`,
        "beta:",
        "  listen: 127.0.0.1:{port2}",
        "  servers:",
        `   - 127.0.0.1:${b.port}:1`,
        "",
      ].join("\n");
      const mr = await startConfigProxy(yaml);
      try {
        const keys = makeKeys(500, 7);
        await setAll(mr.port, keys, "a");
        await setAll(mr.port2, keys, "b");
        equal((await locate([a.port, b.port], keys, "a")).filter((w) => w !== 0).length, 0);
        equal((await locate([a.port, b.port], keys, "b")).filter((w) => w !== 1).length, 0);
        const stats = await readStats(mr.statsPort);
        ok("alpha" in stats && "beta" in stats, "both pools in stats");
      } finally {
        await mr.proc.stop();
      }
    });
  },
});

Deno.test("nutcracker.yml: unsupported and invalid directives are refused (exit 2, named)", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const cases: [string, RegExp][] = [
      ["  redis_auth: secret\n", /redis_auth/],
      ["  redis: true\n", /redis: true/],
      ["  tcpkeepalive: true\n", /tcpkeepalive/],
      ["  hash: sha1\n", /"hash:".*sha1/],
      ["  distribution: maglev\n", /distribution/],
      ["  no_such_thing: 1\n", /no_such_thing.*unknown/],
      ['  hash_tag: "{"\n', /hash_tag/],
      ["  backup_writes: later\n", /"backup_writes:" has an invalid value 'later'/],
      ['  zone: ""\n', /"zone:" is empty/],
    ];
    for (const [line, re] of cases) {
      const file = `${dir}/bad.yml`;
      await Deno.writeTextFile(
        file,
        `alpha:\n  listen: 127.0.0.1:1\n${line}  servers:\n   - 127.0.0.1:11211:1\n`,
      );
      for (const args of [["proxy", "-c", file, "-t"], ["proxy", "-c", file]]) {
        const r = await runMemrep(args);
        equal(r.code, 2, `${args.join(" ")} with ${line.trim()}: ${r.stderr}`);
        ok(re.test(r.stderr), `message names it: ${r.stderr}`);
      }
    }
    // Bad server lines and structure.
    for (
      const [text, re] of [
        ["alpha:\n  listen: 127.0.0.1:1\n  servers:\n   - 127.0.0.1:11211\n", /invalid/],
        ["alpha:\n  listen: 127.0.0.1:1\n  servers:\n   - 127.0.0.1:11211:0\n", /zero weight/],
        ["alpha:\n  servers:\n   - 127.0.0.1:11211:1\n", /listen/],
        ["alpha:\n  listen: 127.0.0.1:1\n", /no servers/],
        ["alpha:\n  listen: 127.0.0.1:1\n  servers:\n   - a:1:1 x\n   - b:1:1 x\n", /same name/],
        ["alpha:\n  listen: 127.0.0.1:1\n  listen: 127.0.0.1:2\n", /duplicate/],
        ["alpha: &x\n  listen: 127.0.0.1:1\n", /unsupported/],
      ] as [string, RegExp][]
    ) {
      await Deno.writeTextFile(`${dir}/bad.yml`, text);
      const r = await runMemrep(["proxy", "-t", "-c", `${dir}/bad.yml`]);
      equal(r.code, 2, text);
      ok(re.test(r.stderr), `${JSON.stringify(text)}: ${r.stderr}`);
    }
    // nutcracker's -D is refused by name; magent's -b means nothing beside -c (nutcracker's options).
    for (
      const [args, re] of [
        [["-D"], /--describe-stats/],
        [["-b", "127.0.0.1:1"], /Unknown option '-b'/],
      ] as [string[], RegExp][]
    ) {
      const r = await runMemrep(["proxy", "-c", `${dir}/bad.yml`, ...args]);
      equal(r.code, 2, args.join(" "));
      ok(re.test(r.stderr), `${args.join(" ")}: ${r.stderr}`);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("nutcracker.yml: -t / --check-config accept a valid file (nutcracker's own example)", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const file = `${dir}/ok.yml`;
    await Deno.writeTextFile(
      file,
      [
        "# from nutcracker's README, memcached pools",
        "alpha:",
        "  listen: 127.0.0.1:22121",
        "  hash: fnv1a_64",
        "  distribution: ketama",
        "  auto_eject_hosts: true",
        "  redis: false",
        "  server_retry_timeout: 2000",
        "  server_failure_limit: 1",
        "  servers:",
        "   - 127.0.0.1:11211:1",
        "",
        "gamma:",
        "  listen: 127.0.0.1:22123",
        "  hash: fnv1a_64",
        "  distribution: ketama",
        "  timeout: 400",
        "  backlog: 1024",
        "  preconnect: true",
        "  auto_eject_hosts: true",
        "  server_retry_timeout: 2000",
        "  server_failure_limit: 3",
        "  servers:",
        "   - 127.0.0.1:11212:1",
        "   - 127.0.0.1:11213:1",
        "  backups:  # memrep: a copy of every write",
        "   - 127.0.0.1:11214:1",
        "  miss_fallback: false",
        "",
        "omega:",
        "  listen: 127.0.0.1:22125",
        "  hash: hsieh",
        "  distribution: modula",
        "  hash_tag: '{}'",
        "  servers:",
        "   - 127.0.0.1:11214:100000 server1",
        "   - 127.0.0.1:11215:1 'server2'",
        "",
      ].join("\n"),
    );
    for (const flag of ["-t", "--check-config", "--test-conf"]) {
      const r = await runMemrep(["proxy", "-c", file, flag]);
      equal(r.code, 0, r.stderr);
      ok(/syntax is ok \(3 pools: alpha, gamma, omega\)/.test(r.stdout), r.stdout);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

const STATS = "stats port: nutcracker's JSON shape (top level, pools, servers)";
Deno.test({
  name: STATS,
  ignore: ignoreUnless(STATS, NEED),
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    await withBackends(2, async (b) => {
      const yaml = poolYaml("md5", "ketama", [
        `127.0.0.1:${b[0].port}:1`,
        `127.0.0.1:${b[1].port}:1 second`,
      ]);
      const nc = await startNutcracker(yaml);
      const mr = await startConfigProxy(yaml);
      try {
        const keys = makeKeys(200, 3);
        await setAll(nc.port, keys, "x");
        await setAll(mr.port, keys, "x");
        const ncPort = Number(nc.argv[nc.argv.indexOf("-s") + 1]);
        const theirs = await readStats(ncPort);
        const mine = await readStats(mr.statsPort);
        const top = ["service", "source", "version", "uptime", "timestamp"];
        for (const k of top) ok(k in mine, `top-level ${k}`);
        deepEqual(Object.keys(mine).slice(0, 5), top);
        const scalars = (o: Record<string, unknown>) =>
          Object.keys(o).filter((k) => typeof o[k] !== "object").sort();
        deepEqual(scalars(mine), scalars(theirs), "top-level scalar keys");
        const pool = (o: Record<string, unknown>) => o.alpha as Record<string, unknown>;
        deepEqual(scalars(pool(mine)), scalars(pool(theirs)), "pool keys");
        const servers = (o: Record<string, unknown>) =>
          Object.keys(pool(o)).filter((k) => typeof pool(o)[k] === "object").sort();
        deepEqual(servers(mine), servers(theirs), "server names");
        for (const s of servers(theirs)) {
          const t = pool(theirs)[s] as Record<string, unknown>;
          const m = pool(mine)[s] as Record<string, number>;
          deepEqual(Object.keys(m).sort(), Object.keys(t).sort(), `server ${s} keys`);
        }
        const total = servers(mine).reduce(
          (n, s) => n + (pool(mine)[s] as Record<string, number>).requests,
          0,
        );
        ok(total >= keys.length, `requests counted: ${total}`);
        equal(typeof mine.uptime, "number");
      } finally {
        await nc.stop();
        await mr.proc.stop();
      }
    });
  },
});

const BACKUPS =
  "nutcracker.yml backups: every write is copied; reads fall back when the primary is gone";
Deno.test({
  name: BACKUPS,
  ignore: ignoreUnless(BACKUPS, ["memcached"]),
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    await withBackends(3, async ([a, b, c]) => {
      const yaml = [
        "alpha:",
        "  listen: 127.0.0.1:{port}",
        "  server_failure_limit: 1",
        "  servers:",
        `   - 127.0.0.1:${a.port}:1`,
        `   - 127.0.0.1:${b.port}:1`,
        "  backups:",
        `   - 127.0.0.1:${c.port}:1`,
        "",
      ].join("\n");
      const mr = await startConfigProxy(yaml);
      try {
        const keys = makeKeys(1000, 11);
        await setAll(mr.port, keys, "w");
        // On the backup, every key (copies are asynchronous); on the primaries, each key once.
        await waitUntil(
          async () => (await locate([c.port], keys, "w")).every((w) => w === 0),
          "every write copied to the backup",
        );
        equal((await locate([a.port, b.port], keys, "w")).filter((w) => w < 0).length, 0);
        // Primary a gone: its keys are read from the backup.
        await a.stop();
        const got = await exchange(
          mr.port,
          keys.map((k) => `mg ${k} v\r\n`).join("") + "mn\r\n",
          (t) => t.endsWith("MN\r\n"),
        );
        equal(got.split("VA 1").length - 1, keys.length, "every key still readable");
      } finally {
        await mr.proc.stop();
      }
    });
  },
});

const ZONE = "nutcracker.yml zone: backups in the proxy's zone are read first";
Deno.test({
  name: ZONE,
  ignore: ignoreUnless(ZONE, ["memcached"]),
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    await withBackends(3, async ([a, far, near]) => {
      const yaml = [
        "alpha:",
        "  listen: 127.0.0.1:{port}",
        "  zone: zone-a",
        "  server_failure_limit: 1",
        "  servers:",
        `   - server: 127.0.0.1:${a.port}:1`,
        "     zone: zone-a",
        "  backups:",
        `   - server: 127.0.0.1:${far.port}:1 far`,
        "     zone: zone-b",
        `   - server: 127.0.0.1:${near.port}:1 near`,
        "     zone: zone-a",
        "",
      ].join("\n");
      const mr = await startConfigProxy(yaml);
      try {
        const keys = makeKeys(300, 5);
        await setAll(mr.port, keys, "z");
        await waitUntil(
          async () =>
            (await locate([far.port], keys, "z")).every((w) => w === 0) &&
            (await locate([near.port], keys, "z")).every((w) => w === 0),
          "copies on both backups",
        );
        await a.stop();
        const requests = async (name: string) => {
          const pool = (await readStats(mr.statsPort)).alpha as Record<
            string,
            { requests: number }
          >;
          return pool[name].requests;
        };
        const [far0, near0] = [await requests("far"), await requests("near")];
        const got = await exchange(
          mr.port,
          keys.map((k) => `mg ${k} v\r\n`).join("") + "mn\r\n",
          (t) => t.endsWith("MN\r\n"),
        );
        equal(got.split("VA 1").length - 1, keys.length, "every key read from a backup");
        ok(await requests("near") - near0 >= keys.length, "the near backup answered");
        equal(await requests("far") - far0, 0, "the far backup was not asked");
      } finally {
        await mr.proc.stop();
      }
    });
  },
});

const DAEMON =
  "nutcracker.yml with -d: the file is checked in the foreground, the pools run in the background";
Deno.test({
  name: DAEMON,
  ignore: ignoreUnless(DAEMON, ["memcached"]),
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    await withBackends(1, async ([a]) => {
      const dir = await Deno.makeTempDir();
      const port = freePort();
      const file = `${dir}/nc.yml`;
      try {
        await Deno.writeTextFile(
          file,
          `alpha:\n  listen: 127.0.0.1:${port}\n  servers:\n   - 127.0.0.1:${a.port}:1\n`,
        );
        const statsArgs = ["--stats-port", String(freePort()), "--stats-addr", "127.0.0.1"];
        // nutcracker's command line as its own test suite gives it (-s stats port, -p pid file).
        const [pidFile, logFile] = [`${dir}/nc.pid`, `${dir}/nc.log`];
        const ncArgs = ["-d", "-c", file, "-o", logFile, "-p", pidFile, "-s", String(freePort())];
        const r = await runMemrep(["proxy", ...ncArgs, "-a", "127.0.0.1", "-v", "7", "-m", "512"]);
        equal(r.code, 0, r.stderr);
        const c = await connect(port);
        const stats = await c.request("stats proxy", "END\r\n");
        const pid = Number(/STAT pid (\d+)/.exec(stats)?.[1]);
        ok(pid > 0, stats);
        await c.close();
        equal(Deno.readTextFileSync(pidFile), `${pid}\n`);
        // The background process keeps nutcracker's command line, so `pkill -f` on it finds it.
        const cmdline = Deno.readTextFileSync(`/proc/${pid}/cmdline`).replaceAll("\0", " ");
        ok(cmdline.includes(ncArgs.join(" ")), cmdline);
        // -v 7 is -vv: the pool's start is in the -o file.
        ok(/pool 'alpha' listening/.test(Deno.readTextFileSync(logFile)));
        Deno.kill(pid, "SIGTERM");
        await waitUntil(() => {
          try {
            Deno.statSync(pidFile);
            return false;
          } catch {
            return true;
          }
        }, "the pid file removed at exit");
        // A bad file is refused before anything starts.
        await Deno.writeTextFile(file, "alpha:\n  listen: nowhere\n");
        const bad = await runMemrep(["proxy", "-c", file, "-d", ...statsArgs]);
        equal(bad.code, 2, bad.stderr);
      } finally {
        await Deno.remove(dir, { recursive: true });
      }
    });
  },
});

const AUTH =
  "nutcracker.yml with -Y and --backend-auth: every pool asks clients to log in and logs in to backends";
Deno.test({
  name: AUTH,
  ignore: ignoreUnless(AUTH, ["memcached"]),
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const dir = await Deno.makeTempDir();
    try {
      await Deno.writeTextFile(`${dir}/clients`, "alice:s3cret\n");
      await Deno.writeTextFile(`${dir}/backends`, "proxy:b4ckend\n");
      const backend = await startMemcached(["-Y", `${dir}/backends`]);
      const yaml = [
        "alpha:",
        "  listen: 127.0.0.1:{port}",
        "  servers:",
        `   - 127.0.0.1:${backend.port}:1`,
        "beta:",
        "  listen: 127.0.0.1:{port2}",
        "  servers:",
        `   - 127.0.0.1:${backend.port}:1`,
        "",
      ].join("\n");
      const mr = await startConfigProxy(yaml, [
        "-Y",
        `${dir}/clients`,
        "--backend-auth",
        "proxy:b4ckend",
      ]);
      try {
        for (const port of [mr.port, mr.port2]) {
          const c = await connect(port);
          equal(await c.request("get k\r\n"), "CLIENT_ERROR unauthenticated\r\n");
          equal(await c.request("set auth 0 0 12\r\nalice s3cret\r\n"), "STORED\r\n");
          equal(await c.request("set k 0 0 1\r\nv\r\n"), "STORED\r\n");
          equal(await c.request("get k\r\n", "END\r\n"), "VALUE k 0 1\r\nv\r\nEND\r\n");
          await c.close();
        }
      } finally {
        await mr.proc.stop();
        await backend.stop();
      }
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

const SYNC = "backup_writes: sync answers a write once the backup has it; async does not wait";
Deno.test({
  name: SYNC,
  ignore: ignoreUnless(SYNC, ["memcached"]),
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    await withBackends(2, async ([a, b]) => {
      const relay = startRelay(b.port);
      const pool = (name: string, listen: string, mode: string) =>
        [
          `${name}:`,
          `  listen: 127.0.0.1:${listen}`,
          "  timeout: 20000",
          `  backup_writes: ${mode}`,
          "  servers:",
          `   - 127.0.0.1:${a.port}:1`,
          "  backups:",
          `   - 127.0.0.1:${relay.port}:1`,
        ].join("\n");
      const mr = await startConfigProxy(
        pool("alpha", "{port}", "sync") + "\n" + pool("beta", "{port2}", "async") + "\n",
      );
      const syncConn = await connect(mr.port);
      const asyncConn = await connect(mr.port2);
      try {
        // Both pools connected to the backup before it hangs.
        equal(await syncConn.request("set warm 0 0 1\r\n1\r\n"), "STORED\r\n");
        equal(await asyncConn.request("set warm2 0 0 1\r\n1\r\n"), "STORED\r\n");
        relay.pause();
        // async: answered by the primary alone while the backup hangs.
        equal(await asyncConn.request("set k1 0 0 2\r\nv1\r\n"), "STORED\r\n");
        // sync: no answer while the copy cannot be acknowledged.
        await syncConn.send("set k2 0 0 2\r\nv2\r\n");
        equal((await syncConn.readIdle(800, 800)).length, 0, "answered before the backup had it");
        relay.resume();
        equal(await syncConn.readUntilText("STORED\r\n", 10_000), "STORED\r\n");
        // The reply came after the copy: the backup has it now.
        const direct = await connect(b.port);
        equal(await direct.request("mg k2 v"), "VA 2\r\n");
        equal(await direct.readLine(), "v2");
        // A delete waits for the backup too.
        relay.pause();
        await syncConn.send("delete k2\r\n");
        equal((await syncConn.readIdle(800, 800)).length, 0, "delete answered before the backup");
        relay.resume();
        equal(await syncConn.readUntilText("DELETED\r\n", 10_000), "DELETED\r\n");
        equal(await direct.request("mg k2 v"), "EN\r\n");
        await direct.close();
      } finally {
        relay.resume();
        await syncConn.close();
        await asyncConn.close();
        await mr.proc.stop();
        await relay.close();
      }
    });
  },
});

const SYNC_FLAGS = "--backup-writes sync (magent flags): a set is answered once the backup has it";
Deno.test({
  name: SYNC_FLAGS,
  ignore: ignoreUnless(SYNC_FLAGS, ["memcached"]),
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    await withBackends(2, async ([a, b]) => {
      const relay = startRelay(b.port);
      const mr = await startMemrep([
        "proxy",
        "-s",
        `127.0.0.1:${a.port}`,
        "-b",
        `127.0.0.1:${relay.port}`,
        "--timeout",
        "20000",
        "--backup-writes",
        "sync",
      ]);
      const c = await connect(mr.port);
      try {
        equal(await c.request("set warm 0 0 1\r\n1\r\n"), "STORED\r\n");
        relay.pause();
        await c.send("set k 0 0 1\r\nv\r\n");
        equal((await c.readIdle(800, 800)).length, 0, "answered before the backup had it");
        relay.resume();
        equal(await c.readUntilText("STORED\r\n", 10_000), "STORED\r\n");
        const direct = await connect(b.port);
        equal(await direct.request("mg k v"), "VA 1\r\n");
        await direct.close();
        const bad = await runMemrep(["proxy", "-s", "127.0.0.1:1", "--backup-writes", "soon"]);
        equal(bad.code, 2, bad.stderr);
      } finally {
        relay.resume();
        await c.close();
        await mr.stop();
        await relay.close();
      }
    });
  },
});

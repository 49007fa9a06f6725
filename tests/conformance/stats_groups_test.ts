/**
 * `stats settings` and `stats slabs` against memcached 1.6.18 started with the same flags.
 * Settings:
 * the same names in the same order (memcached's extstore `ext_*` lines
 * aside: memrep has no extstore) and the same values, `tcpport` being each
 * server's own port. Tools read settings such as tcpport, inter and
 * slab_chunk_max from here. Slabs: the per-class command counters after
 * the same commands (memrep's classes are not memcached's, so the sums over
 * the classes are compared).
 * @module
 */

import { connect, equal, ignoreUnless, ok, startMemcached, startMemrep } from "../helpers/mod.ts";

/** xorshift32: the command script is the same for both servers. */
class Random {
  #s: number;
  constructor(seed: number) {
    this.#s = seed >>> 0 || 1;
  }
  /** An integer in [0, n). */
  below(n: number): number {
    let x = this.#s;
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    this.#s = x >>> 0;
    return this.#s % n;
  }
}

const NAME = "stats settings lists memcached's settings in its order, with its values";

async function settings(port: number): Promise<[string, string][]> {
  const c = await connect(port);
  try {
    const text = await c.request("stats settings\r\n", "END\r\n");
    return text.split("\r\n").filter((l) => l.startsWith("STAT ")).map((l) => {
      const [, name, ...value] = l.split(" ");
      return [name, value.join(" ")];
    });
  } finally {
    await c.close();
  }
}

Deno.test({
  name: NAME,
  ignore: ignoreUnless(NAME, ["memcached"]),
  async fn(t) {
    for (const flags of SETTINGS_FLAGS) {
      await t.step(flags.join(" "), () => compareSettings(flags));
    }
  },
});

/** Flag sets whose `stats settings` must match: -C, -b and -o suboptions change values. */
const SETTINGS_FLAGS = [
  ["-m", "32", "-c", "500", "-t", "2", "-R", "7", "-o", "slab_chunk_max=262144"],
  ["-t", "2", "-C", "-b", "8675", "-o", "no_modern"],
  ["-t", "2", "-o", "lru_maintainer,lru_crawler,temporary_ttl=30,no_chunked_items"],
  [
    "-t",
    "2",
    "-o",
    "no_lru_crawler,no_lru_maintainer,hashpower=16,slab_automove=2,slab_automove_ratio=0.5," +
    "slab_automove_window=5,tail_repair_time=20,hash_algorithm=xxh3,lru_crawler_sleep=50," +
    "lru_crawler_tocrawl=7,hot_lru_pct=10,warm_lru_pct=30,hot_max_factor=0.5,warm_max_factor=3," +
    "watcher_logbuf_size=128,no_maxconns_fast,no_slab_reassign",
  ],
];

async function compareSettings(flags: string[]): Promise<void> {
  {
    const ref = await startMemcached(flags);
    let sut;
    try {
      sut = await startMemrep(["serve", ...flags]);
      const expected = (await settings(ref.port)).filter(([n]) => !n.startsWith("ext_"))
        .map(([n, v]) => [n, n === "tcpport" ? "<port>" : v]);
      const actual = (await settings(sut.port))
        .map(([n, v]) => [n, n === "tcpport" && v === String(sut!.port) ? "<port>" : v]);
      equal(actual.map(([n]) => n).join(" "), expected.map(([n]) => n).join(" "));
      const differ = expected.filter(([, v], i) => actual[i][1] !== v)
        .map(([n, v]) => `${n}: memcached ${v}, memrep ${actual.find(([m]) => m === n)?.[1]}`);
      equal(differ.join("\n"), "");
    } finally {
      await Promise.all([ref.stop(), sut?.stop()]);
    }
  }
}

const SLABS =
  "stats slabs has memcached's per-class counters, summing to its totals (memcached_exporter needs cmd_set)";
const COUNTERS = [
  "get_hits",
  "cmd_set",
  "delete_hits",
  "incr_hits",
  "decr_hits",
  "cas_hits",
  "cas_badval",
  "touch_hits",
];

/** After the same commands: each counter summed over the classes `stats slabs` lists. */
async function slabCounters(port: number): Promise<Map<string, number>> {
  const c = await connect(port);
  try {
    const r = new Random(0x51ab);
    let script = "";
    for (let i = 0; i < 300; i++) {
      const k = `sk${r.below(40)}`;
      const v = "v".repeat(r.below(3) === 0 ? 2000 : 1 + r.below(60));
      switch (r.below(8)) {
        case 0:
        case 1:
          script += `set ${k} 0 0 ${v.length}\r\n${v}\r\n`;
          break;
        case 2:
          script += `get ${k} sk1 nokey\r\n`;
          break;
        case 3:
          script += `delete ${k}\r\n`;
          break;
        case 4:
          script += `set ${k} 0 0 2\r\n${10 + r.below(80)}\r\nincr ${k} 3\r\ndecr ${k} 1\r\n`;
          break;
        case 5:
          script += `touch ${k} 100\r\ngat 100 ${k}\r\nmg ${k} v\r\nmg ${k} T30\r\n`;
          break;
        case 6:
          script += `cas ${k} 0 0 1 1\r\nx\r\nma ${k}\r\nmd ${k} q\r\n`;
          break;
        default:
          script += `ms ${k} ${v.length}\r\n${v}\r\n`;
      }
    }
    await c.request(script + "mn\r\n", "MN\r\n");
    // One cas that matches and one that does not.
    await c.request("set casme 0 0 1\r\nx\r\n");
    const gets = await c.request("gets casme\r\n", "END\r\n");
    const unique = gets.split("\r\n")[0].split(" ")[4];
    await c.request(
      `cas casme 0 0 1 ${unique}\r\ny\r\ncas casme 0 0 1 ${unique}\r\nz\r\n`,
      /EXISTS\r\n$/,
    );
    const text = await c.request("stats slabs\r\n", "END\r\n");
    const sums = new Map<string, number>(COUNTERS.map((n) => [n, 0]));
    const classes = new Map<string, Set<string>>();
    for (const line of text.split("\r\n")) {
      const m = /^STAT (\d+):(\w+) (\d+)$/.exec(line);
      if (!m) continue;
      if (!classes.has(m[1])) classes.set(m[1], new Set());
      classes.get(m[1])!.add(m[2]);
      if (sums.has(m[2])) sums.set(m[2], sums.get(m[2])! + Number(m[3]));
    }
    for (const [cls, fields] of classes) {
      for (const n of COUNTERS) ok(fields.has(n), `class ${cls} has no ${n} in stats slabs`);
    }
    return sums;
  } finally {
    await c.close();
  }
}

Deno.test({
  name: SLABS,
  ignore: ignoreUnless(SLABS, ["memcached"]),
  async fn() {
    const ref = await startMemcached(["-m", "64"]);
    let sut;
    try {
      sut = await startMemrep(["serve", "-m", "64", "-t", "2"]);
      const [expected, actual] = await Promise.all([
        slabCounters(ref.port),
        slabCounters(sut.port),
      ]);
      if (Deno.env.get("SHOW")) console.log(expected);
      equal(JSON.stringify([...actual]), JSON.stringify([...expected]));
    } finally {
      await Promise.all([ref.stop(), sut?.stop()]);
    }
  },
});

const GENERAL =
  "stats has every line memcached's has, in its order (monitoring tools read them by name)";

async function statNames(port: number): Promise<string[]> {
  const c = await connect(port);
  try {
    const text = await c.request("stats\r\n", "END\r\n");
    return text.split("\r\n").filter((l) => l.startsWith("STAT ")).map((l) => l.split(" ")[1]);
  } finally {
    await c.close();
  }
}

Deno.test({
  name: GENERAL,
  ignore: ignoreUnless(GENERAL, ["memcached"]),
  async fn() {
    const ref = await startMemcached([]);
    let sut;
    try {
      sut = await startMemrep(["serve"]);
      const expected = await statNames(ref.port);
      const actual = await statNames(sut.port);
      equal(expected.filter((n) => !actual.includes(n)).join(" "), "", "missing in memrep");
      equal(
        actual.filter((n) => expected.includes(n)).join(" "),
        expected.join(" "),
        "memcached's lines out of order",
      );
    } finally {
      await Promise.all([ref.stop(), sut?.stop()]);
    }
  },
});

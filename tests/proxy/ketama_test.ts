/**
 * Key placement: memrep proxy's ketama ring is twemproxy's (`distribution:
 * ketama`, `hash: md5`), so keys written through nutcracker are found
 * through memrep proxy over the same servers; `--hash modula` is magent's.
 */

import { equal, ok } from "../helpers/assert.ts";
import {
  connect,
  ignoreUnless,
  startMemcached,
  startMemrep,
  startNutcracker,
} from "../helpers/mod.ts";
import {
  HASHES,
  Ketama,
  KetamaDistribution,
  ketamaName,
  md5,
  Modula,
} from "../../lib/proxy/mod.ts";
import { md5x4, MD5X4_MAX_KEY } from "../../lib/proxy/md5x4.ts";
import { HEAP_BYTES, setOf } from "../../lib/proxy/ketama.ts";
import { directGet, getValue, seeded, startCluster } from "./cluster.ts";
import { createHash } from "node:crypto";

Deno.test("md5 matches node:crypto for every padding case", () => {
  const out = new Uint32Array(4);
  for (const n of [0, 1, 3, 55, 56, 57, 63, 64, 65, 119, 120, 127, 128, 250, 1000]) {
    const b = new Uint8Array(n + 4).map((_, i) => (i * 31 + n) & 255);
    md5(b, 2, n + 2, out);
    const mine = Array.from(new Uint8Array(out.buffer), (x) => x.toString(16).padStart(2, "0"))
      .join("");
    equal(mine, createHash("md5").update(b.subarray(2, n + 2)).digest("hex"), `length ${n}`);
  }
});

Deno.test("md5x4 gives each of four keys md5's first word, for every short length", () => {
  const out = new Uint32Array(4), one = new Uint32Array(4);
  const se = new Int32Array(8);
  const b = new Uint8Array(4096).map((_, i) => (i * 131 + (i >> 7)) & 255);
  for (let n = 0; n <= MD5X4_MAX_KEY; n++) {
    // Four different keys of lengths n, n/2, 55 - n and 1 at scattered offsets.
    const lens = [n, n >> 1, MD5X4_MAX_KEY - n, 1];
    for (let l = 0; l < 4; l++) {
      se[2 * l] = 7 + n * 13 + l * 300;
      se[2 * l + 1] = se[2 * l] + lens[l];
    }
    md5x4(b, se, out);
    for (let l = 0; l < 4; l++) {
      md5(b, se[2 * l], se[2 * l + 1], one);
      equal(out[l], one[0], `length ${lens[l]}`);
      const ref = createHash("md5").update(b.subarray(se[2 * l], se[2 * l + 1])).digest();
      equal(out[l], ref.readUInt32LE(0), `length ${lens[l]} (node:crypto)`);
    }
  }
});

Deno.test("ketama pickMany places every key where pick does (short, long, odd counts)", () => {
  const rand = seeded(5);
  for (const servers of [2, 4, 7]) {
    const names = Array.from({ length: servers }, (_, i) => ({ name: `10.0.0.${i}`, weight: 1 }));
    const ring = new Ketama(names);
    // nutcracker.yml rings: md5 (batched), md5 with a hash tag and crc32 (one key at a time).
    const pools = [
      new KetamaDistribution(names, HASHES.md5),
      new KetamaDistribution(names, HASHES.md5, { open: 123, close: 125 }),
      new KetamaDistribution(names, HASHES.crc32),
    ];
    for (const count of [1, 3, 4, 5, 17, 1000]) {
      let text = "";
      const starts = new Int32Array(count + 2), ends = new Int32Array(count + 2);
      for (let i = 0; i < count; i++) {
        const len = rand() < 0.3 ? 50 + Math.floor(rand() * 200) : Math.floor(rand() * 60);
        if (rand() < 0.1) text += "{t}"; // a hash tag for the tagged ring
        starts[i + 2] = text.length;
        for (let k = 0; k < len; k++) text += String.fromCharCode(33 + Math.floor(rand() * 94));
        ends[i + 2] = text.length;
        text += " ";
      }
      const buf = new TextEncoder().encode(text);
      let wrong = 0;
      for (const d of [ring, ...pools]) {
        const out = new Int32Array(count);
        d.pickMany(buf, starts, ends, 2, count, out);
        for (let i = 0; i < count; i++) {
          if (out[i] !== d.pick(buf, starts[i + 2], ends[i + 2])) wrong++;
        }
      }
      equal(wrong, 0, `${servers} servers, ${count} keys`);
    }
  }
});

Deno.test("ketama pickMany's placement cache: repeated, duplicate, evicted and near-identical keys stay where pick puts them", () => {
  const rand = seeded(11);
  const names = Array.from({ length: 5 }, (_, i) => ({ name: `10.1.0.${i}:11211`, weight: 1 }));
  const ring = new Ketama(names);
  // Keys that differ in one byte or only in length (the cache compares lengths and bytes), keys at
  // and past the cache's and md5x4's length limits, empty keys, and random keys: more than the
  // cache holds (8,192), so sets overflow and entries are replaced while others are found.
  const pool: string[] = ["", "a", "aa", "ab", "ba"];
  for (let i = 0; i < 400; i++) pool.push(`mgkey:${i}`, `mgkey:${i} `.trim() + "x");
  for (const len of [46, 47, 48, 49, 50, 54, 55, 56, 57, 100]) {
    pool.push("k".repeat(len), "k".repeat(len - 1) + "j");
  }
  for (let i = 0; i < 12000; i++) {
    const len = 1 + Math.floor(rand() * 60);
    let k = "";
    for (let c = 0; c < len; c++) k += String.fromCharCode(33 + Math.floor(rand() * 94));
    pool.push(k);
  }
  const other = new Ketama(names.slice(1));
  let wrong = 0, checked = 0;
  for (let round = 0; round < 60; round++) {
    // A multi-get of up to 1,500 keys drawn from the pool, hot ones (the first 900) more often,
    // duplicates included.
    const count = 1 + Math.floor(rand() * 1500);
    const keys: string[] = [];
    for (let i = 0; i < count; i++) {
      const hot = rand() < 0.7;
      keys.push(pool[Math.floor(rand() * (hot ? 900 : pool.length))]);
      if (rand() < 0.05) keys.push(keys[keys.length - 1]);
    }
    const text = " " + keys.join(" ");
    const buf = new TextEncoder().encode(text);
    const starts = new Int32Array(keys.length + 1), ends = new Int32Array(keys.length + 1);
    let at = 1;
    for (let i = 0; i < keys.length; i++) {
      starts[i + 1] = at;
      ends[i + 1] = at + keys[i].length;
      at += keys[i].length + 1;
    }
    for (const r of round % 2 === 0 ? [ring] : [ring, other]) {
      const out = new Int32Array(keys.length);
      r.pickMany(buf, starts, ends, 1, keys.length, out);
      for (let i = 0; i < keys.length; i++) {
        checked++;
        if (out[i] !== r.pick(buf, starts[i + 1], ends[i + 1])) wrong++;
      }
    }
  }
  equal(wrong, 0, `${wrong} of ${checked} placements differ from pick`);
  ok(checked > 50000, `checked ${checked}`);
});

Deno.test("ketama's placement cache tells apart keys of one set: prefixes, twins, a third key", () => {
  const rand = seeded(12);
  const enc = new TextEncoder();
  const names = Array.from({ length: 7 }, (_, i) => ({ name: `10.2.0.${i}:11211`, weight: 1 }));
  const setOfKey = (k: string) => {
    const b = enc.encode(k);
    return setOf(b, 0, b.length);
  };
  const randomKey = (len: number) => {
    let k = "";
    for (let c = 0; c < len; c++) k += String.fromCharCode(33 + Math.floor(rand() * 94));
    return k;
  };
  // Groups of keys that share a set: a key and a longer one it starts (the cache must compare
  // lengths), a key and one that differs in its last byte, and three unrelated keys (two ways).
  const groups: string[][] = [];
  while (groups.length < 30) {
    const k = randomKey(1 + Math.floor(rand() * 46));
    const twin = groups.length % 2 === 0 ? k + "~" : k.slice(0, -1) + (k.endsWith("A") ? "B" : "A");
    if (setOfKey(k) === setOfKey(twin)) groups.push([k, twin]);
  }
  for (let g = 0; g < 10; g++) {
    const first = randomKey(20), set = setOfKey(first);
    const group = [first];
    while (group.length < 3) {
      const k = randomKey(20);
      if (setOfKey(k) === set) group.push(k);
    }
    groups.push(group);
  }
  let wrong = 0, checked = 0;
  for (const group of [...groups, ...groups.map((g) => [...g].reverse())]) {
    const ring = new Ketama(names);
    // Each key alone (the first one kept is found by the later ones' lookups), then all together.
    for (const keys of [...group.map((k) => [k]), group, [...group].reverse(), group]) {
      const buf = enc.encode(keys.join(" "));
      const starts = new Int32Array(keys.length), ends = new Int32Array(keys.length);
      let at = 0;
      keys.forEach((k, i) => {
        starts[i] = at;
        ends[i] = at + enc.encode(k).length;
        at = ends[i] + 1;
      });
      const out = new Int32Array(keys.length);
      ring.pickMany(buf, starts, ends, 0, keys.length, out);
      for (let i = 0; i < keys.length; i++) {
        checked++;
        if (out[i] !== ring.pick(buf, starts[i], ends[i])) wrong++;
      }
    }
  }
  equal(wrong, 0, `${wrong} of ${checked} placements differ from pick`);
});

Deno.test("ketama's placement cache never finds an entry overwritten in its heap, even where the bytes now there spell its key", () => {
  const enc = new TextEncoder();
  const names = Array.from({ length: 5 }, (_, i) => ({ name: `10.3.0.${i}:11211`, weight: 1 }));
  const ring = new Ketama(names);
  // Entries are kept one after the other in a ring of HEAP_BYTES: its length, its server (two
  // bytes), the key. K (33 bytes: its length is "!") is kept at heap position 10, after a key of 7.
  const target = "t".repeat(32) + "K";
  const set = setOf(enc.encode(target), 0, target.length);
  const place = (keys: string[]) => {
    const buf = enc.encode(keys.join(" "));
    const starts = new Int32Array(keys.length), ends = new Int32Array(keys.length);
    let at = 0;
    keys.forEach((k, i) => {
      starts[i] = at;
      ends[i] = at + k.length;
      at = ends[i] + 1;
    });
    const out = new Int32Array(keys.length);
    ring.pickMany(buf, starts, ends, 0, keys.length, out);
    for (let i = 0; i < keys.length; i++) {
      equal(out[i], ring.pick(buf, starts[i], ends[i]), `key ${keys[i]}`);
    }
  };
  // Fillers of a given length (at least 4), none in K's set (they would replace it there), all
  // distinct.
  let serial = 0;
  const filler = (len: number) => {
    for (;;) {
      const k = (serial++).toString(36).padStart(len, "_");
      if (setOf(enc.encode(k), 0, k.length) !== set) return k;
    }
  };
  place([filler(7), target]);
  // The rest of the ring's first lap, exactly: entries of up to 51 bytes (48-byte keys).
  const lap: string[] = [];
  let rest = HEAP_BYTES - (10 + 3 + target.length);
  while (rest > 51) {
    const size = Math.min(51, rest - 7);
    lap.push(filler(size - 3));
    rest -= size;
  }
  lap.push(filler(rest - 3));
  place(lap);
  // Second lap: a key of 4 (7 bytes), then one whose bytes from position 10 on are K's entry as
  // it was, with "ab" for its server (an index no ring has): K's way still points there.
  const forged = "!ab" + target;
  equal(forged.length, 36);
  place([filler(4), forged]);
  // K again: its old entry is overwritten (and spelled out by the forged key): md5 places it.
  place([target]);
});

Deno.test("ketama's placement cache: multi-gets repeating earlier ones' keys in order (found entry after entry) stay where pick puts them, over many laps of its heap", () => {
  const rand = seeded(21);
  const enc = new TextEncoder();
  const names = Array.from({ length: 4 }, (_, i) => ({ name: `10.4.0.${i}:11211`, weight: 1 }));
  const ring = new Ketama(names);
  const lists: string[][] = [];
  for (let l = 0; l < 6; l++) {
    lists.push(Array.from({ length: 1000 }, (_, i) => `list${l}:${i}:${"x".repeat(i % 40)}`));
  }
  let wrong = 0, checked = 0;
  for (let round = 0; round < 300; round++) {
    // A whole list, a run of one, a run with new keys mixed in, or one in another order.
    const list = lists[Math.floor(rand() * lists.length)];
    const from = Math.floor(rand() * 900), to = from + 1 + Math.floor(rand() * (1000 - from));
    let keys = list.slice(from, to);
    const kind = round % 4;
    if (kind === 0) keys = list;
    if (kind === 2) keys = keys.flatMap((k) => rand() < 0.1 ? [`new${round}:${k}`, k] : [k]);
    if (kind === 3) keys = [...keys].reverse();
    const buf = enc.encode(keys.join(" "));
    const starts = new Int32Array(keys.length), ends = new Int32Array(keys.length);
    let at = 0;
    keys.forEach((k, i) => {
      starts[i] = at;
      ends[i] = at + k.length;
      at = ends[i] + 1;
    });
    const out = new Int32Array(keys.length);
    ring.pickMany(buf, starts, ends, 0, keys.length, out);
    for (let i = 0; i < keys.length; i++) {
      checked++;
      if (out[i] !== ring.pick(buf, starts[i], ends[i])) wrong++;
    }
  }
  equal(wrong, 0, `${wrong} of ${checked} placements differ from pick`);
});

Deno.test("ketama's placement cache never takes the skipped end of a lap of its heap for the entry after the lap's last one, even where the bytes there spell a key", () => {
  const enc = new TextEncoder();
  const names = Array.from({ length: 5 }, (_, i) => ({ name: `10.5.0.${i}:11211`, weight: 1 }));
  const ring = new Ketama(names);
  const place = (keys: string[]) => {
    const buf = enc.encode(keys.join(" "));
    const starts = new Int32Array(keys.length), ends = new Int32Array(keys.length);
    let at = 0;
    keys.forEach((k, i) => {
      starts[i] = at;
      ends[i] = at + k.length;
      at = ends[i] + 1;
    });
    const out = new Int32Array(keys.length);
    ring.pickMany(buf, starts, ends, 0, keys.length, out);
    for (let i = 0; i < keys.length; i++) {
      equal(out[i], ring.pick(buf, starts[i], ends[i]), `key ${keys[i]}`);
    }
  };
  // Entries follow each other in a ring of HEAP_BYTES (length, server in two bytes, key); one
  // that does not fit before the ring's end goes to its start, and the end is skipped.
  const a = "A".repeat(20), b = "u".repeat(32) + "B"; // b's length (33) is "!"
  const setA = setOf(enc.encode(a), 0, a.length);
  let serial = 0;
  const filler = (len: number) => {
    for (;;) {
      const k = (serial++).toString(36).padStart(len, "_");
      if (setOf(enc.encode(k), 0, k.length) !== setA) return k;
    }
  };
  /** Fillers taking exactly `bytes` of heap (entries of 7 to 51 bytes). */
  const fill = (bytes: number) => {
    const keys: string[] = [];
    while (bytes > 0) {
      const size = bytes > 58 ? 51 : bytes > 51 ? bytes - 7 : bytes;
      keys.push(filler(size - 3));
      bytes -= size;
    }
    place(keys);
  };
  // First lap: its last entry (51 bytes) holds, 40 bytes before the ring's end, b's entry
  // spelled out with "ab" for its server (an index no ring has).
  fill(HEAP_BYTES - 51);
  const spelled = "xxxxxxxx" + "!ab" + b + "yyyy";
  equal(spelled.length, 48);
  place([spelled]);
  // Second lap: a ends 40 bytes before the ring's end; the next entry (51 bytes) skips the rest.
  fill(HEAP_BYTES - 40 - (3 + a.length));
  place([a]);
  place([filler(48)]);
  // a, then b: a is found, and where the entry after a's would be, b's old spelling is still
  // there; b is not kept, so md5 must place it.
  place([a, b]);
});

Deno.test("ketama serverAt is the owner of the first point at or after the hash, wrapping", () => {
  const rand = seeded(8);
  for (const n of [1, 2, 5, 300]) {
    const ring = new Ketama(Array.from({ length: n }, (_, i) => ({ name: `s${i}`, weight: 1 })));
    const v = ring.values;
    const hashes = [0, 1, 2 ** 32 - 1, v[0], v[0] - 1, v[v.length - 1], v[v.length - 1] + 1];
    for (let i = 0; i < 2000; i++) hashes.push(Math.floor(rand() * 2 ** 32));
    for (let i = 0; i < v.length; i += 7) hashes.push(v[i], v[i] + 1, v[i] - 1);
    let wrong = 0;
    for (const h of hashes.filter((x) => x >= 0 && x < 2 ** 32)) {
      let i = 0;
      while (i < v.length && v[i] < h) i++;
      if (ring.serverAt(h) !== ring.owners[i === v.length ? 0 : i]) wrong++;
    }
    equal(wrong, 0, `${n} servers`);
  }
});

Deno.test("ketama: 160 points per server, names drop port 11211 like twemproxy", () => {
  equal(ketamaName("10.0.0.1", 11211), "10.0.0.1");
  equal(ketamaName("10.0.0.1", 11212), "10.0.0.1:11212");
  for (const n of [1, 2, 3, 5, 7]) {
    const ring = new Ketama(Array.from({ length: n }, (_, i) => ({ name: `h:${i}`, weight: 1 })));
    equal(ring.values.length, 160 * n, `${n} servers`);
    for (let i = 1; i < ring.values.length; i++) ok(ring.values[i - 1] <= ring.values[i]);
  }
});

Deno.test("modula: magent's DJB hash modulo the server count", () => {
  const m = new Modula(3);
  const key = new TextEncoder().encode("key1");
  let h = 5381;
  for (const c of key) h = (h * 33 + c) >>> 0;
  equal(m.pick(key, 0, key.length), (h & 0x7fffffff) % 3);
});

const NC = "keys written through nutcracker (ketama, md5) are found through memrep proxy";
Deno.test({
  name: NC,
  ignore: ignoreUnless(NC, ["memcached", "nutcracker"]),
  async fn() {
    const servers = await Promise.all([startMemcached(), startMemcached(), startMemcached()]);
    const addrs = servers.map((s) => `127.0.0.1:${s.port}`);
    const nutcracker = await startNutcracker({
      servers: addrs,
      hash: "md5",
      distribution: "ketama",
    });
    const proxy = await startMemrep(["proxy", ...addrs.flatMap((a) => ["-s", a])]);
    try {
      const nc = await connect(nutcracker.port);
      const keys = Array.from({ length: 300 }, (_, i) => `nc:${i}:${"x".repeat(i % 11)}`);
      for (const k of keys) {
        equal(await nc.request(`set ${k} 0 0 ${k.length}\r\n${k}`), "STORED\r\n");
      }
      await nc.close();
      // Each key sits on exactly one server, and the proxy reads it from there.
      const mp = await connect(proxy.port);
      let found = 0;
      for (const k of keys) if (await getValue(mp, k) === k) found++;
      equal(found, keys.length, "every key found through memrep proxy");
      // And the proxy writes where nutcracker reads.
      for (const k of keys.slice(0, 50)) {
        equal(await mp.request(`set ${k} 0 0 3\r\nnew`), "STORED\r\n");
      }
      await mp.close();
      const nc2 = await connect(nutcracker.port);
      for (const k of keys.slice(0, 50)) equal(await getValue(nc2, k), "new", k);
      await nc2.close();
      const spread = await Promise.all(servers.map(async (s) => {
        let n = 0;
        for (const k of keys) if (await directGet(s.port, k) !== undefined) n++;
        return n;
      }));
      equal(spread.reduce((a, b) => a + b, 0), keys.length, `each key on one server: ${spread}`);
      ok(spread.every((n) => n > 30), `keys spread over all servers: ${spread}`);
    } finally {
      await proxy.stop();
      await nutcracker.stop();
      await Promise.all(servers.map((s) => s.stop()));
    }
  },
});

Deno.test({
  name: "--hash modula places keys like magent without -k",
  ignore: ignoreUnless("modula placement", ["memcached"]),
  async fn() {
    const cluster = await startCluster({
      servers: 3,
      backups: 0,
      proxyArgs: ["--hash", "modula"],
    });
    try {
      const c = await connect(cluster.proxy.port);
      const m = new Modula(3);
      const enc = new TextEncoder();
      for (let i = 0; i < 60; i++) {
        const k = `mod:${i}`;
        equal(await c.request(`set ${k} 0 0 1\r\nv`), "STORED\r\n");
        const kb = enc.encode(k);
        const want = m.pick(kb, 0, kb.length);
        for (let s = 0; s < 3; s++) {
          equal(await directGet(cluster.servers[s].port, k) !== undefined, s === want, k);
        }
      }
      await c.close();
    } finally {
      await cluster.stop();
    }
  },
});

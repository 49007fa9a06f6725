/**
 * Hostile or corrupt replication bytes never throw: the frame parser, the
 * merge and the serve threads' change ring decoder get seeded random bytes,
 * mutated valid frames and frames with out-of-range versions; every call
 * returns a result, and no version beyond the clock's bound reaches the
 * store or the clock (issue 9).
 */

import { equal, ok } from "../helpers/assert.ts";
import { Writer } from "../../lib/protocol/mod.ts";
import { Store } from "../../lib/store/mod.ts";
import { Applied, Merger } from "../../lib/replication/merge.ts";
import { Frame, FrameParser } from "../../lib/replication/stream.ts";
import {
  createReplicationShare,
  MainReplicationShare,
  type RingSink,
} from "../../lib/replication/threads.ts";
import { HybridClock, MAX_DRIFT_MS, versionAt } from "../../lib/replication/versions.ts";

const enc = new TextEncoder();
const START_UNIX = Math.floor(Date.now() / 1000) - 100;

/** A small seeded PRNG (xorshift32) so a failure can be replayed. */
function rng(seed: number): (n: number) => number {
  let s = seed >>> 0 || 1;
  return (n) => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s % n;
  };
}

/** Numbers a hostile peer would send: small, near and beyond 2**53, far ahead, not numbers. */
function number(r: (n: number) => number): string {
  const now = versionAt(Date.now());
  const picks = [
    () => String(r(1000)),
    () => String(now + r(1 << 20)),
    () => String(versionAt(Date.now() + MAX_DRIFT_MS * (2 + r(1000)))),
    () => String(2 ** 53 - 1 - r(2)),
    () => String(2 ** 53 + r(100)),
    () => "9".repeat(1 + r(40)),
    () => "18446744073709551616",
    () => "-" + r(10),
    () => "1e9",
    () => "",
    () => "0x10",
  ];
  // Mostly numbers that parse, so frames get through to the merge.
  return picks[r(3) ? r(5) : r(picks.length)]();
}

/** A random frame-shaped line (right verbs, random fields), sometimes with a data block. */
function frameish(r: (n: number) => number): string {
  const key = ["k", "key" + r(50), "a".repeat(1 + r(300)), "Zm9v", "!!", ""][r(6)];
  const n = () => number(r);
  const bits = String([0, 1, 4, 5, 8, r(100)][r(6)]);
  const data = "x".repeat(r(20));
  switch (r(9)) {
    case 0:
      return `S ${key} ${n()} ${n()} ${n()} ${bits} ${n()} ${data.length}\r\n${data}\r\n`;
    case 1:
      return `CS ${key} ${r(10)} 0 ${n()} ${bits} ${n()} ${r(30)}\r\n${data}\r\n`;
    case 2:
      return `${["D", "CD"][r(2)]} ${key} ${n()} ${bits}\r\n`;
    case 3:
      return `F ${n()} ${n()}\r\n`;
    case 4:
      return `COPY s${r(3)} ${n()} ${n()} ${n()}\r\n`;
    case 5:
      return `${["PING", "ACK", "COPIED"][r(3)]} ${n()}\r\n`;
    case 6:
      return `RESUME s${r(3)} ${n()}\r\n`;
    case 7:
      return `ERR ${key}\r\n`;
    default:
      return `${key} ${n()}\r\n`;
  }
}

/** Random bytes, frame-shaped text, or a frame with bytes flipped, cut or inserted. */
function input(r: (n: number) => number): Uint8Array {
  const kind = r(3);
  if (kind === 0) {
    const b = new Uint8Array(r(2000));
    for (let i = 0; i < b.length; i++) b[i] = [r(256), 10, 13, 32, 48 + r(10), 83][r(6)];
    return b;
  }
  let text = "";
  for (let i = 1 + r(8); i > 0; i--) text += frameish(r);
  const b = enc.encode(text);
  if (kind === 1) return b;
  for (let i = 1 + r(4); i > 0 && b.length > 0; i--) b[r(b.length)] = r(256);
  return r(2) ? b.subarray(0, r(b.length + 1)) : b;
}

function merger() {
  const clock = { t: 100, processStartUnix: START_UNIX, now: () => 100 };
  const store = new Store({ memoryLimit: 8 * 1048576, maxItemSize: 65536, evict: true }, clock);
  const hlc = new HybridClock(1);
  store.nextCas = () => hlc.tick();
  return { store, hlc, merger: new Merger(store, clock, hlc, 1024) };
}

Deno.test("frame parser and merge: seeded random and corrupt frames never throw, bad versions never land", () => {
  const seed = Number(Deno.env.get("FUZZ_SEED") ?? 20261201);
  const r = rng(seed);
  const { store, hlc, merger: m } = merger();
  const parser = new FrameParser();
  const results = new Set<number>();
  let frames = 0;
  for (let round = 0; round < 3000; round++) {
    const buf = input(r);
    let at = 0;
    try {
      while (at < buf.length) {
        const used = parser.parse(buf, at, buf.length);
        ok(used <= buf.length - at, `frame within the bytes (seed ${seed}, round ${round})`);
        if (used === 0) break;
        if (used < 0) {
          // The link would close here; go on at the next line to test more of the parser.
          const nl = buf.indexOf(10, at);
          if (nl < 0) break;
          at = nl + 1;
          continue;
        }
        if (parser.kind >= Frame.ITEM && parser.kind <= Frame.COPY_DELETE) {
          results.add(m.applyFrame(parser));
          frames++;
        } else if (parser.kind === Frame.COPY) m.adoptEpoch(parser.nums[2]);
        else if (parser.kind === Frame.PING) hlc.observe(parser.nums[0]);
        at += used;
      }
    } catch (err) {
      throw new Error(`seed ${seed}, round ${round}: ${err}\n${JSON.stringify([...buf])}`);
    }
    ok(hlc.last <= hlc.bound(), `clock within bounds (seed ${seed}, round ${round})`);
  }
  let bad = 0;
  store.scan(0, 1 << 30, (h) => {
    if (!hlc.accepts(store.cas(h))) bad++;
  });
  equal(bad, 0, "no stored item has a version beyond the bound");
  ok(m.flushEpoch <= hlc.bound(), "flush epoch within bounds");
  for (const v of m.tombstones.values()) ok(hlc.accepts(v), `tombstone version ${v}`);
  ok(frames > 300, `enough frames parsed to mean something (${frames})`);
  ok(results.has(Applied.REJECTED) && results.has(Applied.CHANGED), [...results].join());
});

Deno.test("change ring: random bytes between valid frames are dropped with a full copy, never thrown", () => {
  const r = rng(7);
  const share = createReplicationShare(65536, false);
  const nums = new BigInt64Array(share.ctl, 64, 4);
  const ring = new Uint8Array(share.ring);
  const parser = new FrameParser();
  const seen = { frames: 0, corrupt: 0, full: 0 };
  const sink: RingSink = {
    frame: () => seen.frames++,
    overflowed: (corrupt) => corrupt ? seen.corrupt++ : seen.full++,
    drained: () => {},
  };
  const main = new MainReplicationShare(share, sink, (b, s, e) => parser.parse(b, s, e));
  const w = new Writer(4096);
  let tail = 0;
  for (let round = 0; round < 500; round++) {
    w.length = 0;
    const good = 1 + r(3);
    for (let i = 0; i < good; i++) w.text(`D k${round}-${i} ${versionAt(Date.now())} 0\r\n`);
    const junk = input(r);
    const corrupt = round % 2 === 1 && junk.length > 0;
    if (corrupt) w.bytes(junk);
    const before = seen.frames, corrupted = seen.corrupt;
    for (let i = 0; i < w.length; i++) ring[(tail + i) % ring.length] = w.buf[i];
    tail += w.length;
    Atomics.store(nums, 1, BigInt(tail));
    main.drain(); // must not throw
    ok(seen.frames - before >= good, `round ${round}: the frames before the junk arrive`);
    // Junk may happen to be valid frames; when it is not, a full copy is asked for.
    if (!corrupt) equal(seen.corrupt, corrupted, `round ${round}: clean ring`);
    equal(Number(Atomics.load(nums, 0)), tail, "the ring is drained");
  }
  ok(seen.corrupt > 100, `corrupt rings noticed (${seen.corrupt})`);
});

Deno.test("merge: each kind of out-of-range version is refused and leaves the clock alone", () => {
  const { store, hlc, merger: m } = merger();
  const k = enc.encode("key"), v = enc.encode("value");
  const now = versionAt(Date.now());
  const far = versionAt(Date.now() + MAX_DRIFT_MS + 60_000);
  const item = (version: number, touch = 0) =>
    m.applyItem(k, 0, k.length, v, 0, v.length, 0, 0, version, 0, touch);
  const before = hlc.last;
  for (const bad of [2 ** 53, Infinity, NaN, -16, far, 2 ** 53 - 1]) {
    equal(item(bad), Applied.REJECTED, `item version ${bad}`);
    equal(item(now, bad), Applied.REJECTED, `touch version ${bad}`);
    equal(m.applyDelete(k, 0, k.length, bad), Applied.REJECTED, `delete version ${bad}`);
    equal(m.applyFlush(bad, 0, false), Applied.REJECTED, `flush version ${bad}`);
    equal(m.adoptEpoch(bad), false, `epoch ${bad}`);
    equal(hlc.observe(bad), false, `clock ${bad}`);
  }
  equal(m.applyFlush(now, 2 ** 40, false), Applied.REJECTED, "flush time past int32");
  equal(hlc.last, before, "the clock did not move");
  equal(m.tombstones.size, 0);
  equal(store.stats.currItems, 0);
  // The bound itself is taken: a peer up to MAX_DRIFT_MS ahead is followed, as the HLC must.
  const edge = versionAt(Date.now() + MAX_DRIFT_MS - 60_000);
  equal(item(edge), Applied.CHANGED);
  ok(hlc.tick() > edge, "later local writes are newer than what was followed");
});

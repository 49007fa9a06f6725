/**
 * The pure parts of replication, without processes: version clock, backlog
 * ring, frame parser, merge rules.
 */

import { deepEqual, equal, ok } from "../helpers/assert.ts";
import { Writer } from "../../lib/protocol/mod.ts";
import { Store } from "../../lib/store/mod.ts";
import { Backlog } from "../../lib/replication/backlog.ts";
import { Applied, Merger } from "../../lib/replication/merge.ts";
import {
  BIT_BINARY_KEY,
  Frame,
  FrameParser,
  VERB,
  writeDeleteFrame,
  writeFlushFrame,
  writeItemFrame,
} from "../../lib/replication/stream.ts";
import { Snapshot } from "../../lib/replication/snapshot.ts";
import { HybridClock, versionAt, versionTime } from "../../lib/replication/versions.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();
const START_UNIX = 1_700_000_000;

class FakeClock {
  t = 10;
  readonly processStartUnix = START_UNIX;
  now(): number {
    return this.t;
  }
}

function setup() {
  const clock = new FakeClock();
  const store = new Store({ memoryLimit: 16 * 1048576, maxItemSize: 1048576, evict: true }, clock);
  let wall = (START_UNIX + 10) * 1000;
  const hlc = new HybridClock(1, () => wall);
  store.nextCas = () => hlc.tick();
  const merger = new Merger(store, clock, hlc, 1024);
  return { clock, store, hlc, merger, advance: (ms: number) => (wall += ms) };
}

function put(store: Store, key: string, value: string, flags = 0, exp = 0): number {
  const k = enc.encode(key), v = enc.encode(value);
  const h = store.alloc(k, 0, k.length, flags, exp, v.length);
  store.buffer(h).set(v, store.valueOffset(h));
  store.link(h);
  return h;
}

function value(store: Store, key: string): string | undefined {
  const k = enc.encode(key);
  const h = store.find(k, 0, k.length);
  if (h < 0) return undefined;
  const vo = store.valueOffset(h);
  return dec.decode(store.buffer(h).subarray(vo, vo + store.valueLength(h)));
}

function casOf(store: Store, key: string): number {
  const k = enc.encode(key);
  return store.cas(store.find(k, 0, k.length));
}

/** Apply an item as the peer would send it. */
function applyItem(
  m: Merger,
  key: string,
  v: string,
  version: number,
  expUnix = 0,
  flags = 0,
  touch = 0,
) {
  const k = enc.encode(key), b = enc.encode(v);
  return m.applyItem(k, 0, k.length, b, 0, b.length, flags, expUnix, version, 0, touch);
}

Deno.test("versions: ticks grow strictly, follow wall time and jump past observed versions", () => {
  let wall = Date.UTC(2025, 0, 1);
  const hlc = new HybridClock(3, () => wall);
  const a = hlc.tick(), b = hlc.tick();
  ok(b > a);
  equal(a % 16, 3);
  equal(versionTime(a), wall);
  wall -= 5000; // the wall clock steps back: versions do not
  ok(hlc.tick() > b);
  const remote = versionAt(wall + 60_000) + 7;
  hlc.observe(remote);
  const c = hlc.tick();
  ok(c > remote);
  equal(c % 16, 3);
  ok(Number.isSafeInteger(versionAt(Date.UTC(2089, 0, 1))));
});

Deno.test("backlog: wraps, grows, and forgets the oldest bytes past its capacity", () => {
  const b = new Backlog(4096);
  const chunk = new Uint8Array(1000);
  for (let i = 0; i < 10; i++) b.push(chunk.fill(i));
  equal(b.end, 10_000);
  equal(b.used, 4096);
  equal(b.start, 10_000 - 4096);
  ok(!b.holds(1000));
  ok(b.holds(9000));
  const out = new Writer(16);
  b.copyTo(out, 8000, 10_000);
  equal(out.length, 2000);
  equal(out.buf[0], 8);
  equal(out.buf[1999], 9);
});

Deno.test("frames: item, delete, flush and control frames round-trip through the parser", () => {
  const { store } = setup();
  const h = put(store, "key1", "hello world", 42, 100);
  const out = new Writer(64);
  writeItemFrame(out, VERB.S, store, h, 0, 0, START_UNIX);
  const bin = new Uint8Array([0, 32, 10, 13, 255, 128]);
  writeDeleteFrame(out, VERB.D, bin, 0, bin.length, 12345);
  writeFlushFrame(out, 777, START_UNIX + 5);
  out.text("ACK 99\r\nCOPY abc 10 20 30\r\n");
  const p = new FrameParser();
  const buf = out.view();
  let off = 0;
  const kinds: number[] = [];
  // Feed it byte by byte first: never a frame before all its bytes are there.
  for (let end = 1; end <= buf.length; end++) {
    const n = p.parse(buf, off, end);
    ok(n >= 0, p.error);
    if (n === 0) continue;
    kinds.push(p.kind);
    if (p.kind === Frame.ITEM) {
      equal(dec.decode(p.keyBuf.subarray(p.keyStart, p.keyEnd)), "key1");
      equal(dec.decode(p.buf.subarray(p.dataStart, p.dataEnd)), "hello world");
      equal(p.flags, 42);
      equal(p.exp, START_UNIX + 100);
      equal(p.version, store.cas(h));
    }
    if (p.kind === Frame.DELETE) {
      equal(p.bits, BIT_BINARY_KEY);
      deepEqual([...p.keyBuf.subarray(p.keyStart, p.keyEnd)], [...bin]);
      equal(p.version, 12345);
    }
    if (p.kind === Frame.FLUSH) deepEqual([p.version, p.exp], [777, START_UNIX + 5]);
    if (p.kind === Frame.COPY) deepEqual([p.text, ...p.nums.slice(0, 3)], ["abc", 10, 20, 30]);
    off += n;
  }
  deepEqual(kinds, [Frame.ITEM, Frame.DELETE, Frame.FLUSH, Frame.ACK, Frame.COPY]);
});

Deno.test("frames: random bytes never throw and never pass as a frame with a bad length", () => {
  const p = new FrameParser();
  let seed = 7;
  const rnd = () => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) >>> 8) / 0x1000000;
  const words = ["S ", "D ", "F ", "CS ", "ACK ", "COPY ", "PING ", "RESUME ", "x"];
  for (let i = 0; i < 5000; i++) {
    const parts: string[] = [];
    for (let j = 0; j < 1 + rnd() * 8; j++) {
      parts.push(
        rnd() < 0.3 ? words[Math.floor(rnd() * words.length)] : String(Math.floor(rnd() * 1e6)),
      );
      parts.push(rnd() < 0.8 ? " " : rnd() < 0.5 ? "\r\n" : "\n");
    }
    const junk = new Uint8Array(Math.floor(rnd() * 64)).map(() => Math.floor(rnd() * 256));
    const buf = new Uint8Array([...enc.encode(parts.join("")), ...junk]);
    let off = 0;
    for (let guard = 0; guard < 100 && off < buf.length; guard++) {
      const n = p.parse(buf, off, buf.length);
      if (n <= 0) break;
      ok(off + n <= buf.length);
      off += n;
    }
  }
});

Deno.test("merge: newer versions win, older ones are ignored, ties go to the larger value", () => {
  const { store, merger, hlc } = setup();
  put(store, "k", "local");
  const local = casOf(store, "k");
  equal(applyItem(merger, "k", "older", local - 16), Applied.IGNORED);
  equal(value(store, "k"), "local");
  equal(applyItem(merger, "k", "newer", local + 16), Applied.CHANGED);
  equal(value(store, "k"), "newer");
  equal(casOf(store, "k"), local + 16);
  ok(hlc.tick() > local + 16, "the clock moved past the applied version");
  // Same version, different bytes (explicit CAS on both sides): the same winner everywhere.
  const v = casOf(store, "k");
  equal(applyItem(merger, "k", "aaaaa", v), Applied.IGNORED);
  equal(applyItem(merger, "k", "zzzzz", v), Applied.CHANGED);
  equal(value(store, "k"), "zzzzz");
});

Deno.test("merge: a touch (same version and value, newer touch version) carries the expiry", () => {
  const { store, merger, clock } = setup();
  put(store, "t", "v");
  const v = casOf(store, "t");
  equal(applyItem(merger, "t", "v", v, START_UNIX + 500, 0, v + 16), Applied.CHANGED);
  const k = enc.encode("t");
  equal(store.exptime(store.find(k, 0, 1)), 500);
  equal(applyItem(merger, "t", "v", v, START_UNIX + 500, 0, v + 16), Applied.IGNORED);
  // An already expired newer state removes the item.
  equal(applyItem(merger, "t", "v2", v + 16, START_UNIX + clock.t - 1), Applied.CHANGED);
  equal(value(store, "t"), undefined);
});

Deno.test("merge: concurrent touches of the same item end with the later touch on both nodes", () => {
  const x = setup(), y = setup();
  put(x.store, "k", "v");
  const v = casOf(x.store, "k");
  applyItem(y.merger, "k", "v", v); // y has the same write
  const early = v + 160, late = v + 320;
  // x touched first (exp +100), y later (exp +200); each hears of the other's afterwards.
  x.merger.touched("k", early);
  x.store.setExptime(x.store.find(enc.encode("k"), 0, 1), 100);
  y.merger.touched("k", late);
  y.store.setExptime(y.store.find(enc.encode("k"), 0, 1), 200);
  equal(applyItem(x.merger, "k", "v", v, START_UNIX + 200, 0, late), Applied.CHANGED);
  equal(applyItem(y.merger, "k", "v", v, START_UNIX + 100, 0, early), Applied.IGNORED);
  const k = enc.encode("k");
  equal(x.store.exptime(x.store.find(k, 0, 1)), 200);
  equal(y.store.exptime(y.store.find(k, 0, 1)), 200);
});

Deno.test("merge: tombstones keep a late older write from resurrecting a deleted key", () => {
  const { store, merger } = setup();
  put(store, "d", "x");
  const v = casOf(store, "d");
  const k = enc.encode("d");
  equal(merger.applyDelete(k, 0, 1, v + 32), Applied.CHANGED);
  equal(value(store, "d"), undefined);
  equal(applyItem(merger, "d", "late", v + 16), Applied.IGNORED);
  equal(value(store, "d"), undefined);
  equal(applyItem(merger, "d", "after", v + 48), Applied.CHANGED);
  equal(value(store, "d"), "after");
  // A delete older than the live item leaves it alone.
  equal(merger.applyDelete(k, 0, 1, v + 40), Applied.IGNORED);
  equal(value(store, "d"), "after");
});

Deno.test("merge: flush_all drops older items only and refuses older writes after it", () => {
  const { store, merger, hlc, clock, advance } = setup();
  put(store, "old", "1");
  advance(5);
  const flushVersion = hlc.tick() + 1000;
  advance(5);
  const newer = flushVersion + 16;
  applyItem(merger, "new", "2", newer);
  equal(merger.applyFlush(flushVersion, START_UNIX + clock.t, false), Applied.CHANGED);
  equal(value(store, "old"), undefined);
  equal(value(store, "new"), "2");
  equal(applyItem(merger, "late", "3", flushVersion - 16), Applied.IGNORED);
  equal(value(store, "late"), undefined);
});

Deno.test("snapshot: a full copy holds every item and tombstone, applied elsewhere it converges", () => {
  const a = setup(), b = setup();
  for (let i = 0; i < 2000; i++) put(a.store, `k${i}`, `value-${i}`, i, i % 3 === 0 ? 1000 : 0);
  const dk = enc.encode("gone");
  a.merger.remember(dk, 0, dk.length, a.hlc.tick());
  put(b.store, "gone", "stale", 0, 0);
  b.store.setCas(b.store.find(dk, 0, dk.length), 16); // older than the delete
  const snap = new Snapshot(a.store, a.merger, START_UNIX);
  const out = new Writer(1024);
  const p = new FrameParser();
  let chunks = 0;
  for (let done = false; !done; chunks++) {
    out.length = 0;
    done = snap.fill(out, 8192);
    const buf = out.view();
    for (let off = 0; off < buf.length;) {
      const n = p.parse(buf, off, buf.length);
      ok(n > 0, p.error);
      ok(p.kind === Frame.COPY_ITEM || p.kind === Frame.COPY_DELETE, `frame kind ${p.kind}`);
      b.merger.applyFrame(p);
      off += n;
    }
  }
  ok(chunks > 5, "the copy came in chunks");
  equal(snap.items, 2000);
  equal(snap.tombstones, 1);
  equal(b.store.stats.currItems, 2000);
  for (const i of [0, 1, 999, 1999]) {
    equal(value(b.store, `k${i}`), `value-${i}`);
    equal(casOf(b.store, `k${i}`), casOf(a.store, `k${i}`));
  }
  equal(value(b.store, "gone"), undefined);
});

/**
 * The pure parts of replication, without processes: version clock, backlog
 * ring, frame parser, merge rules.
 */

import { deepEqual, equal, ok } from "../helpers/assert.ts";
import { Writer } from "../../lib/protocol/mod.ts";
import { Store } from "../../lib/store/mod.ts";
import { AgreedVersions, Backlog } from "../../lib/replication/backlog.ts";
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
import {
  COPY_WINDOW,
  IncomingCopy,
  OutgoingCopy,
  Snapshot,
} from "../../lib/replication/snapshot.ts";
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
  out.text(
    "ACK 99\r\nCOPY abc 10 20 30 40 50\r\nMARK 3\r\nCACK 3\r\nCDONE 50\r\nKNOWN 4 f00d 77\r\n",
  );
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
    if (p.kind === Frame.COPY) {
      deepEqual([p.text, ...p.nums.slice(0, 5)], ["abc", 10, 20, 30, 40, 50]);
    }
    if (p.kind === Frame.MARK || p.kind === Frame.COPY_ACK) equal(p.nums[0], 3);
    if (p.kind === Frame.COPY_DONE) equal(p.nums[0], 50);
    if (p.kind === Frame.KNOWN) deepEqual([p.nums[0], p.text, p.nums[1]], [4, "f00d", 77]);
    off += n;
  }
  deepEqual(kinds, [
    Frame.ITEM,
    Frame.DELETE,
    Frame.FLUSH,
    Frame.ACK,
    Frame.COPY,
    Frame.MARK,
    Frame.COPY_ACK,
    Frame.COPY_DONE,
    Frame.KNOWN,
  ]);
  // A KNOWN frame with a bad member or offset, or the wrong token count, is no frame.
  for (const bad of ["KNOWN x f00d 77\r\n", "KNOWN 4 f00d -1\r\n", "KNOWN 4 f00d\r\n"]) {
    const b = new TextEncoder().encode(bad);
    equal(p.parse(b, 0, b.length), -1, bad);
  }
});

Deno.test("frames: random bytes never throw and never pass as a frame with a bad length", () => {
  const p = new FrameParser();
  let seed = 7;
  const rnd = () => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) >>> 8) / 0x1000000;
  const words = [
    "S ",
    "D ",
    "F ",
    "CS ",
    "ACK ",
    "COPY ",
    "PING ",
    "RESUME ",
    "MARK ",
    "CACK ",
    "CDONE ",
    "x",
  ];
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

Deno.test("merge: a touch that arrives after its expiry leaves the expiry guard: a late copy of the write it touched stays out", () => {
  // Found by group_chaos_test (seed 910822060): a member SIGSTOPped past a 2 s touch got the
  // touch expired, dropped the item without a guard, and a second copy of the original write
  // (passed on by a third member, or resent after the resume) stored it again for good.
  const { store, merger, clock } = setup();
  put(store, "t", "v");
  const v = casOf(store, "t");
  equal(applyItem(merger, "t", "v", v, START_UNIX + clock.t - 1, 0, v + 16), Applied.CHANGED);
  equal(value(store, "t"), undefined);
  equal(applyItem(merger, "t", "v", v), Applied.IGNORED);
  equal(value(store, "t"), undefined);
  // A write newer than the touch still comes in.
  equal(applyItem(merger, "t", "v2", v + 32), Applied.CHANGED);
  equal(value(store, "t"), "v2");
});

Deno.test("merge: an expired touched item's guard refuses its own write and older ones, not a newer write made before the touch", () => {
  // Found by chaos_link_test (seeds 102654273, 556719074): B wrote v over the item A then
  // touched (2 s), so B ignored the touch of the older item; A's copy expired, and its guard
  // (the touch's version, newer than v) refused v: A empty, B holding v for good.
  const { store, merger } = setup();
  put(store, "k", "old");
  const old = casOf(store, "k");
  const newer = old + 160, touch = old + 320;
  merger.touched("k", touch);
  merger.expired(enc.encode("k"), 0, 1, old);
  store.unlink(store.find(enc.encode("k"), 0, 1));
  equal(applyItem(merger, "k", "old", old), Applied.IGNORED); // the write it touched
  equal(applyItem(merger, "k", "older", old - 16), Applied.IGNORED);
  equal(applyItem(merger, "k", "new", newer), Applied.CHANGED);
  equal(value(store, "k"), "new");
});

Deno.test("merge: a touch newer than the one that expired an item still revives it", () => {
  const { store, merger, clock } = setup();
  put(store, "k", "v");
  const v = casOf(store, "k");
  merger.touched("k", v + 16);
  merger.expired(enc.encode("k"), 0, 1, v);
  store.unlink(store.find(enc.encode("k"), 0, 1));
  equal(applyItem(merger, "k", "v", v, START_UNIX + clock.t + 100, 0, v + 16), Applied.IGNORED);
  equal(applyItem(merger, "k", "v", v, START_UNIX + clock.t + 100, 0, v + 32), Applied.CHANGED);
  equal(value(store, "k"), "v");
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
  // An immediate flush travels as its version alone (time 0, see flushTime).
  equal(merger.applyFlush(flushVersion, 0, false), Applied.CHANGED);
  equal(value(store, "old"), undefined);
  equal(value(store, "new"), "2");
  equal(applyItem(merger, "late", "3", flushVersion - 16), Applied.IGNORED);
  equal(value(store, "late"), undefined);
  equal(clock.t, 10);
});

Deno.test("merge: a delayed flush_all drops by version up to the end of its second, whenever an item was stored", () => {
  const { store, merger, hlc, clock } = setup();
  const at = START_UNIX + clock.t + 2; // clock second 12
  put(store, "old", "1");
  equal(merger.applyFlush(hlc.tick(), at, false), Applied.CHANGED);
  // Made in the flush's second on a node whose clock second began earlier, stored here before
  // this node's: it dies with the flush all the same (as on its writer). One made after stays.
  applyItem(merger, "in", "2", versionAt(at * 1000 + 700));
  applyItem(merger, "next", "3", versionAt((at + 1) * 1000 + 1));
  equal(value(store, "in"), "2", "not yet: the flush is not due");
  clock.t = 12;
  equal(value(store, "old"), undefined);
  equal(value(store, "in"), undefined);
  equal(value(store, "next"), "3");
  // Arriving after it: refused up to the end of its second.
  equal(applyItem(merger, "late", "4", versionAt(at * 1000 + 900)), Applied.IGNORED);
  equal(applyItem(merger, "later", "5", versionAt((at + 1) * 1000 + 5)), Applied.CHANGED);
  equal(value(store, "later"), "5");
  // A delayed flush that arrives once its time has come (its second still running here)
  // also drops what this node stores later in that second.
  const n = setup();
  const at2 = START_UNIX + n.clock.t;
  put(n.store, "before", "6");
  equal(n.merger.applyFlush(n.hlc.tick(), at2, false), Applied.CHANGED);
  equal(value(n.store, "before"), undefined);
  put(n.store, "same-second", "7"); // a local write: its version is below the end of second at2
  ok(casOf(n.store, "same-second") < versionAt((at2 + 1) * 1000));
  equal(value(n.store, "same-second"), undefined);
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

Deno.test("agreed versions: only versions of changes the peer applied count, conservatively", () => {
  const av = new AgreedVersions();
  equal(av.upTo(0), 0);
  // Changes of versions 100, 200, 300 at offsets 0, 10, 20 (1 ms apart), stream end 30.
  av.note(0, 100, 0);
  av.note(10, 200, 1);
  av.note(20, 300, 2);
  av.note(25, 400, 2.5); // same millisecond: not sampled, covered by the sample before
  equal(av.upTo(0), 99); // nothing applied: only what came before version 100
  equal(av.upTo(15), 199);
  equal(av.upTo(22), 299); // the change at 25 (400) is not known applied
  av.acked(10);
  equal(av.upTo(5), 0, "older than what is tracked: nothing is known");
  equal(av.upTo(10), 199);
  // Caught up with everything while the clock stands at 500: all up to 500 agreed.
  av.caughtUp(30, 500);
  equal(av.upTo(30), 500);
  av.note(30, 600, 10);
  equal(av.upTo(30), 599); // the change at 30 has version 600
  equal(av.upTo(40), 599);
});

Deno.test("full copy marks: one bit per item handle, any handle", () => {
  const ic = new IncomingCopy("s", 1, 100, 50);
  const handles = [0, 1, 31, 32, 33, 32767, 32768, (500 << 15) | 77, (1 << 29) + 5];
  for (const h of handles) ok(!ic.marked(h));
  for (const h of handles) ic.mark(h);
  for (const h of handles) ok(ic.marked(h), `handle ${h}`);
  ok(!ic.marked(2) && !ic.marked(34) && !ic.marked((500 << 15) | 78));
});

Deno.test("full copy sweep: drops unmentioned items up to the agreed version, keeps newer ones", () => {
  const { store } = setup();
  const old = [put(store, "old-mentioned", "1"), put(store, "old-gone", "2")];
  const agreed = store.cas(old[1]);
  put(store, "newer", "3"); // written after the agreed point
  const ic = new IncomingCopy("s", 1, agreed, 0);
  ic.mark(old[0]);
  let cursor = 0;
  while (cursor >= 0) cursor = ic.sweep(store, cursor, 1);
  equal(ic.dropped, 1);
  equal(value(store, "old-mentioned"), "1");
  equal(value(store, "old-gone"), undefined);
  equal(value(store, "newer"), "3");
});

Deno.test("merge: a full copy's item the receiver lacks is refused up to the floor (it removed it)", () => {
  const { merger, hlc } = setup();
  const v = hlc.tick();
  equal(applyFloor(merger, "gone", v, v), Applied.IGNORED);
  equal(applyFloor(merger, "fresh", v + 16, v), Applied.CHANGED);
  // An item it has is merged as usual whatever the floor.
  equal(applyFloor(merger, "fresh", v + 32, v + 64), Applied.CHANGED);
});

function applyFloor(m: Merger, key: string, version: number, floor: number): number {
  const k = enc.encode(key), b = enc.encode("v");
  return m.applyItem(k, 0, k.length, b, 0, b.length, 0, 0, version, 0, 0, floor);
}

Deno.test("outgoing copy: a resumed copy goes on from the last acknowledged chunk", () => {
  const a = setup();
  for (let i = 0; i < 10_000; i++) put(a.store, `key${i}`, "x".repeat(100));
  const copy = new OutgoingCopy("peer", 1, 0, 0, new Snapshot(a.store, a.merger, START_UNIX));
  const out = new Writer(1 << 16);
  const seqs: number[] = [];
  while (copy.canSend) {
    out.length = 0;
    ok(!copy.snapshot.fill(out, 16384));
    seqs.push(copy.mark());
  }
  equal(seqs.length, COPY_WINDOW, "the window bounds the unacknowledged chunks");
  copy.acked(seqs[1]);
  ok(copy.canSend);
  const ackedItems = copy.snapshot.items;
  copy.resume(); // the link dropped: chunks 3.. are sent again
  ok(copy.snapshot.items < ackedItems && copy.snapshot.items > 0);
  let total = copy.snapshot.items;
  for (;;) {
    out.length = 0;
    const done = copy.snapshot.fill(out, 16384);
    total = copy.snapshot.items;
    if (done) break;
  }
  equal(total, 10_000, "every item is covered once counted from the resume point");
});

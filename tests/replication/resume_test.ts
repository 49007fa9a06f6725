/**
 * The replication state a warm restart saves (lib/replication/resume.ts),
 * without processes: capture, encode, decode and restore give the new
 * replicator the same stream, position, clock, tombstones and agreement;
 * damaged or random bytes are refused with a reason, never thrown.
 * @module
 */

import { deepEqual, equal, ok } from "../helpers/assert.ts";
import { Writer } from "../../lib/protocol/mod.ts";
import { Store } from "../../lib/store/mod.ts";
import { AgreedVersions, Backlog } from "../../lib/replication/backlog.ts";
import { Merger } from "../../lib/replication/merge.ts";
import {
  captureResume,
  decodeResume,
  encodeResume,
  restoreResume,
  type ResumePeer,
  type ResumeState,
  type ResumeTarget,
} from "../../lib/replication/resume.ts";
import { HybridClock } from "../../lib/replication/versions.ts";

const START_UNIX = 1_700_000_000;

function target(
  streamId: string,
  backlogBytes = 1 << 20,
  peers = [peer("127.0.0.1:11212", 0)],
): ResumeTarget {
  const clock = { processStartUnix: START_UNIX, now: () => 10 };
  const store = new Store({ memoryLimit: 16 * 1048576, maxItemSize: 1048576, evict: true }, clock);
  const hlc = new HybridClock(1);
  return {
    streamId,
    backlog: new Backlog(backlogBytes),
    hlc,
    merger: new Merger(store, clock, hlc, 4096),
    peers,
  };
}

function peer(address: string, index: number): ResumePeer {
  return {
    address,
    index,
    peerStream: null,
    confirmed: 0,
    copyIds: 0,
    copyNext: false,
    agreement: new AgreedVersions(),
  };
}

function held(b: Backlog): Uint8Array {
  const w = new Writer(16);
  b.copyTo(w, b.start, b.end);
  return w.buf.slice(0, w.length);
}

function sample(): { t: ResumeTarget; state: ResumeState } {
  const t = target("00112233aabbccdd", 64 * 1024);
  const bytes = new Uint8Array(200_000).map((_, i) => (i * 7) & 255);
  t.backlog.push(bytes); // wraps the 64 KiB ring several times
  t.peers[0].peerStream = { id: "ffeeddcc00112233", offset: 123_456_789 };
  const v = t.hlc.tick();
  t.merger.remember(new TextEncoder().encode("gone"), 0, 4, v - 100);
  const bin = new Uint8Array([0, 1, 2, 250, 255, 32]);
  t.merger.remember(bin, 0, bin.length, v - 50);
  t.merger.touched("touched", v - 10);
  t.merger.expired(new TextEncoder().encode("expired"), 0, 7, v - 30);
  t.merger.applyFlush(v - 1000, 0, true);
  t.peers[0].agreement.note(199_000, v - 20, 1);
  t.peers[0].agreement.note(199_500, v - 5, 5);
  t.peers[0].agreement.acked(199_000);
  const state = captureResume(t, [{
    confirmed: 190_000,
    sendingCopy: false,
    receivingCopy: false,
  }]);
  return { t, state };
}

Deno.test("resume state: capture, encode, decode and restore give the same stream, position, clock and merge state", () => {
  const { t, state } = sample();
  equal(state.stream?.start, 190_000, "only what the peer did not confirm is kept");
  equal(state.stream?.bytes.length, 10_000);
  const bytes = encodeResume(state);
  equal(bytes.length % 4, 0);
  const back = decodeResume(bytes);
  if (typeof back === "string") throw new Error(back);
  deepEqual(back, state);

  const u = target("00112233aabbccdd", 64 * 1024);
  restoreResume(u, back);
  equal(u.backlog.start, 190_000);
  equal(u.backlog.end, 200_000);
  deepEqual(held(u.backlog), held(t.backlog).subarray(-10_000));
  deepEqual(u.peers[0].peerStream, t.peers[0].peerStream);
  ok(u.hlc.last >= t.hlc.last, "the clock goes on from the saved one");
  ok(u.hlc.tick() > t.hlc.last);
  deepEqual([...u.merger.tombstones], [...t.merger.tombstones]);
  deepEqual([...u.merger.touches], [...t.merger.touches]);
  equal(u.merger.expiries.size, 1);
  deepEqual([...u.merger.expiries], [...t.merger.expiries]);
  equal(u.merger.flushEpoch, t.merger.flushEpoch);
  for (const off of [0, 199_000, 199_400, 199_500, 200_000]) {
    equal(u.peers[0].agreement.upTo(off), t.peers[0].agreement.upTo(off), `agreement at ${off}`);
  }
  // New changes go on at the saved end.
  u.backlog.push(new Uint8Array([1, 2, 3]));
  equal(u.backlog.end, 200_003);
});

Deno.test("resume state: a copy in progress leaves out what cannot resume", () => {
  const { t } = sample();
  const sending = captureResume(t, [{
    confirmed: 190_000,
    sendingCopy: true,
    receivingCopy: false,
  }]);
  equal(sending.stream, null, "an unconfirmed outgoing copy: the stream starts anew");
  ok(sending.peers[0].peerStream !== null);
  const receiving = captureResume(t, [{ confirmed: 0, sendingCopy: false, receivingCopy: true }]);
  equal(
    receiving.peers[0].peerStream,
    null,
    "an unfinished incoming copy: the peer sends a new one",
  );
  equal(receiving.stream?.start, 200_000 - 64 * 1024, "held bytes only");
  const back = decodeResume(encodeResume(sending));
  if (typeof back === "string") throw new Error(back);
  const u = target("a-new-stream");
  restoreResume(u, back);
  equal(u.backlog.end, 0, "a new stream starts at 0");
  deepEqual(u.peers[0].peerStream, t.peers[0].peerStream);
});

Deno.test("resume state: restoring into a smaller backlog keeps the tail", () => {
  const { state } = sample();
  state.stream = { id: "00112233aabbccdd", start: 1000, bytes: new Uint8Array(10_000).fill(7) };
  const u = target("00112233aabbccdd", 4096);
  restoreResume(u, state);
  equal(u.backlog.end, 11_000);
  equal(u.backlog.start, 11_000 - 4096);
  ok(!u.backlog.holds(1000), "a peer at the old start gets a full copy");
});

Deno.test("resume state: damaged, truncated and random bytes are refused with a reason, never thrown", () => {
  const { state } = sample();
  const good = encodeResume(state);
  for (const n of [0, 3, 8, 12, 40, good.length - 4]) {
    equal(typeof decodeResume(good.subarray(0, n)), "string", `truncated to ${n}`);
  }
  const foreign = good.slice();
  foreign[0] ^= 1;
  equal(decodeResume(foreign), "not a replication state");
  let seed = 12345;
  const rnd = () => (seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648;
  for (let i = 0; i < 2000; i++) {
    const b = good.slice();
    const flips = 1 + Math.floor(rnd() * 4);
    for (let f = 0; f < flips; f++) b[Math.floor(rnd() * b.length)] = Math.floor(rnd() * 256);
    const r = decodeResume(b); // must not throw; whatever decodes is well formed
    if (typeof r !== "string") {
      ok(r.hlc >= 0 && Number.isSafeInteger(r.hlc));
      if (r.stream) ok(/^[!-~]+$/.test(r.stream.id));
    }
  }
  for (let i = 0; i < 500; i++) {
    const b = new Uint8Array(Math.floor(rnd() * 200)).map(() => Math.floor(rnd() * 256));
    b.set(good.subarray(0, Math.min(b.length, 12)));
    equal(typeof decodeResume(b), "string");
  }
});

Deno.test("resume state: a group member saves a position per peer, restored by address; an unconfirmed copy to one peer does not end the stream for the others", () => {
  const p0 = peer("10.0.0.1:11212", 0);
  const p2 = peer("10.0.0.3:11212", 2);
  const p3 = peer("10.0.0.4:11212", 3);
  const t = target("00112233aabbccdd", 64 * 1024, [p0, p2, p3]);
  t.backlog.push(new Uint8Array(50_000).fill(3));
  p0.peerStream = { id: "aaaaaaaaaaaaaaaa", offset: 1000 };
  p2.peerStream = { id: "cccccccccccccccc", offset: 2000 };
  p3.peerStream = { id: "dddddddddddddddd", offset: 3000 };
  p3.copyIds = 7;
  const state = captureResume(t, [
    { confirmed: 45_000, sendingCopy: false, receivingCopy: false },
    { confirmed: 40_000, sendingCopy: false, receivingCopy: true },
    { confirmed: 0, sendingCopy: true, receivingCopy: false },
  ]);
  equal(state.stream?.start, 40_000, "from the lowest confirmed offset of the peers that resume");
  equal(state.peers[1].peerStream, null, "an unfinished copy from member 2: it sends a new one");
  equal(state.peers[2].copyNext, true, "member 3 gets a new copy");
  const back = decodeResume(encodeResume(state));
  if (typeof back === "string") throw new Error(back);
  deepEqual(back, state);
  // The next process lists the members in another order and has a new one (index 4).
  const q3 = peer("10.0.0.4:11212", 3), q0 = peer("10.0.0.1:11212", 0);
  const q2 = peer("10.0.0.3:11212", 2), q4 = peer("10.0.0.5:11212", 4);
  const u = target("00112233aabbccdd", 64 * 1024, [q3, q0, q2, q4]);
  restoreResume(u, back);
  equal(u.backlog.start, 40_000);
  equal(u.backlog.end, 50_000);
  deepEqual(q0.peerStream, p0.peerStream);
  equal(q0.confirmed, 45_000);
  equal(q2.peerStream, null);
  equal(q2.confirmed, 40_000);
  deepEqual(q3.peerStream, p3.peerStream);
  equal(q3.copyNext, true);
  equal(q3.copyIds, 7, "the new copy's id differs from the one the peer holds part of");
  equal(q4.peerStream, null, "a member not in the state knows nothing: full copies");
  equal(q4.copyNext, false);
});

Deno.test("resume state: a pair's version 1 state (before groups) still decodes", () => {
  const w = new Writer(256);
  const dv = (n: number, size: 1 | 2 | 4 | 8) => {
    const b = new Uint8Array(size);
    const v = new DataView(b.buffer);
    if (size === 1) v.setUint8(0, n);
    else if (size === 2) v.setUint16(0, n, true);
    else if (size === 4) v.setUint32(0, n, true);
    else v.setFloat64(0, n, true);
    w.bytes(b, 0, size);
  };
  const ascii = (s: string) => w.bytes(new TextEncoder().encode(s), 0, s.length);
  ascii("memrepRS");
  dv(1, 4); // version
  dv(1 | 2, 4); // stream, peer
  for (const n of [99, 5, 0, 0]) dv(n, 8); // clock, flush epoch, no delayed flush
  // The stream [10, 14), the position in the peer's stream, one tombstone, no touch, the agreement.
  const fields: Array<[number | string, 1 | 2 | 4 | 8 | 0]> = [
    [4, 1],
    ["s123", 0],
    [10, 8],
    [14, 8],
    ["abcd", 0],
    [4, 1],
    ["p456", 0],
    [777, 8],
    [1, 4],
    [1, 2],
    ["k", 0],
    [42, 8],
    [0, 4],
    [10, 8],
    [50, 8],
    [0, 4],
  ];
  for (const [v, size] of fields) {
    if (typeof v === "string") ascii(v);
    else dv(v, size as 1 | 2 | 4 | 8);
  }
  while (w.length % 4 !== 0) dv(0, 1);
  const back = decodeResume(w.buf.slice(0, w.length));
  if (typeof back === "string") throw new Error(back);
  equal(back.stream?.id, "s123");
  equal(back.stream?.start, 10);
  equal(back.peers.length, 1);
  deepEqual(back.peers[0].peerStream, { id: "p456", offset: 777 });
  equal(back.peers[0].confirmed, 10);
  deepEqual(back.tombstones, [["k", 42]]);
  const u = target("s123");
  restoreResume(u, back);
  deepEqual(u.peers[0].peerStream, { id: "p456", offset: 777 });
  equal(u.backlog.end, 14);
});

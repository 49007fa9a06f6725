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
  type ResumeState,
  type ResumeTarget,
} from "../../lib/replication/resume.ts";
import { HybridClock } from "../../lib/replication/versions.ts";

const START_UNIX = 1_700_000_000;

function target(streamId: string, backlogBytes = 1 << 20): ResumeTarget {
  const clock = { processStartUnix: START_UNIX, now: () => 10 };
  const store = new Store({ memoryLimit: 16 * 1048576, maxItemSize: 1048576, evict: true }, clock);
  const hlc = new HybridClock(1);
  return {
    streamId,
    backlog: new Backlog(backlogBytes),
    hlc,
    merger: new Merger(store, clock, hlc, 4096),
    agreement: new AgreedVersions(),
    peerStream: null,
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
  t.peerStream = { id: "ffeeddcc00112233", offset: 123_456_789 };
  const v = t.hlc.tick();
  t.merger.remember(new TextEncoder().encode("gone"), 0, 4, v - 100);
  const bin = new Uint8Array([0, 1, 2, 250, 255, 32]);
  t.merger.remember(bin, 0, bin.length, v - 50);
  t.merger.touched("touched", v - 10);
  t.merger.applyFlush(v - 1000, 0, true);
  t.agreement.note(199_000, v - 20, 1);
  t.agreement.note(199_500, v - 5, 5);
  t.agreement.acked(199_000);
  const state = captureResume(t, { confirmed: 190_000, sendingCopy: false, receivingCopy: false });
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
  deepEqual(u.peerStream, t.peerStream);
  ok(u.hlc.last >= t.hlc.last, "the clock goes on from the saved one");
  ok(u.hlc.tick() > t.hlc.last);
  deepEqual([...u.merger.tombstones], [...t.merger.tombstones]);
  deepEqual([...u.merger.touches], [...t.merger.touches]);
  equal(u.merger.flushEpoch, t.merger.flushEpoch);
  for (const off of [0, 199_000, 199_400, 199_500, 200_000]) {
    equal(u.agreement.upTo(off), t.agreement.upTo(off), `agreement at ${off}`);
  }
  // New changes go on at the saved end.
  u.backlog.push(new Uint8Array([1, 2, 3]));
  equal(u.backlog.end, 200_003);
});

Deno.test("resume state: a copy in progress leaves out what cannot resume", () => {
  const { t } = sample();
  const sending = captureResume(t, { confirmed: 190_000, sendingCopy: true, receivingCopy: false });
  equal(sending.stream, null, "an unconfirmed outgoing copy: the stream starts anew");
  ok(sending.peerStream !== null);
  const receiving = captureResume(t, { confirmed: 0, sendingCopy: false, receivingCopy: true });
  equal(receiving.peerStream, null, "an unfinished incoming copy: the peer sends a new one");
  equal(receiving.stream?.start, 200_000 - 64 * 1024, "held bytes only");
  const back = decodeResume(encodeResume(sending));
  if (typeof back === "string") throw new Error(back);
  const u = target("a-new-stream");
  restoreResume(u, back);
  equal(u.backlog.end, 0, "a new stream starts at 0");
  deepEqual(u.peerStream, t.peerStream);
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

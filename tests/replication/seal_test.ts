/**
 * Sealed records (lib/replication/seal.ts) in process: what is sealed comes
 * out the same however the bytes are split on the way, and any altered,
 * injected, dropped, replayed or reordered byte stops the stream before a
 * byte of the bad record is delivered.
 */

import { createHmac } from "node:crypto";
import { equal, ok } from "../helpers/assert.ts";
import { concatBytes } from "../helpers/mod.ts";
import { deriveLinkKeys, OpenedConn, RECORD_MAX, Sealer } from "../../lib/replication/seal.ts";

/** Seeded generator (reproducible failures). */
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => ((s = (Math.imul(s, 1103515245) + 12345) >>> 0) >>> 8) / 0x1000000;
}

/** A Readable that hands out `data` in pieces of random size. */
function pieces(data: Uint8Array, next: () => number) {
  let off = 0;
  return {
    read(p: Uint8Array): Promise<number | null> {
      if (off >= data.length) return Promise.resolve(null);
      const n = Math.min(p.length, data.length - off, 1 + Math.floor(next() * 70_000));
      p.set(data.subarray(off, off + n));
      off += n;
      return Promise.resolve(n);
    },
  };
}

/** Everything `opened` delivers until it stops. */
async function drain(opened: OpenedConn): Promise<Uint8Array> {
  const parts: Uint8Array[] = [];
  const buf = new Uint8Array(50_000);
  for (;;) {
    const n = await opened.read(buf.subarray(0, 1 + (parts.length * 7919) % buf.length));
    if (n === null) return concatBytes(...parts);
    parts.push(buf.slice(0, n));
  }
}

const keys = deriveLinkKeys("s3cret", "greetings", true);
const peerKeys = deriveLinkKeys("s3cret", "greetings", false);

/** Seal `payloads` as records; returns the wire bytes and each record's extent. */
function sealAll(payloads: Uint8Array[]): { wire: Uint8Array; records: Array<[number, number]> } {
  const sealer = new Sealer(keys.send);
  const parts: Uint8Array[] = [];
  const records: Array<[number, number]> = [];
  let at = 0;
  for (const p of payloads) {
    const r = sealer.seal(p, 0, p.length).slice();
    records.push([at, at + r.length]);
    at += r.length;
    parts.push(r);
  }
  return { wire: concatBytes(...parts), records };
}

Deno.test("sealed records: both sides' keys pair up, and the tag is HMAC-SHA256 over seq | length | payload", () => {
  equal(keys.send.join(), peerKeys.recv.join());
  equal(keys.recv.join(), peerKeys.send.join());
  ok(keys.send.join() !== keys.recv.join(), "one key per direction");
  ok(deriveLinkKeys("s3cret", "other greetings", true).send.join() !== keys.send.join());
  const payload = new TextEncoder().encode("PING 1\r\n");
  const sealer = new Sealer(keys.send);
  sealer.seal(payload, 0, payload.length);
  const second = sealer.seal(payload, 0, payload.length);
  const seq = new Uint8Array(8);
  seq[7] = 1;
  const want = createHmac("sha256", keys.send).update(seq).update(second.subarray(0, 4)).update(
    payload,
  ).digest();
  equal(second.subarray(4 + payload.length).join(), new Uint8Array(want).join());
});

Deno.test("sealed records come out whole and in order however the bytes are split", async () => {
  for (let seed = 1; seed <= 5; seed++) {
    const next = rng(seed);
    const payloads = Array.from({ length: 40 }, () => {
      const n = next() < 0.2 ? Math.floor(next() * RECORD_MAX) : Math.floor(next() * 200);
      return new Uint8Array(n).map(() => Math.floor(next() * 256));
    });
    const { wire } = sealAll(payloads);
    // Bytes read with the handshake come first (primed), the connection carries the rest.
    const primed = seed * 3;
    const opened = new OpenedConn(
      pieces(wire.subarray(primed), next),
      peerKeys.recv,
      wire.subarray(0, primed),
    );
    equal((await drain(opened)).join(), concatBytes(...payloads).join(), `seed ${seed}`);
    equal(opened.failure, "");
  }
});

Deno.test("a flipped, injected, dropped, replayed or reordered byte stops the stream at that record", async () => {
  const next = rng(99);
  const payloads = Array.from(
    { length: 12 },
    (_, i) => new Uint8Array(100 + i * 997).map(() => Math.floor(next() * 256)),
  );
  const { wire, records } = sealAll(payloads);
  const before = (i: number) => concatBytes(...payloads.slice(0, i));
  const check = async (tampered: Uint8Array, goodRecords: number, what: string) => {
    const opened = new OpenedConn(pieces(tampered, next), peerKeys.recv);
    const got = await drain(opened);
    equal(got.join(), before(goodRecords).join(), `${what}: only the records before it`);
    ok(opened.failure !== "", `${what}: reported`);
  };
  // Cut inside a record (a dropped connection): nothing of that record, and no attack reported.
  const cut = new OpenedConn(pieces(wire.subarray(0, records[3][1] - 1), next), peerKeys.recv);
  equal((await drain(cut)).join(), before(3).join(), "cut: the whole records before it");
  equal(cut.failure, "");
  let flips = 0;
  // (The last record is left out: a longer length there reads as a cut, not as an attack.)
  for (let r = 0; r < records.length - 1; r++) {
    const [s, e] = records[r];
    // Length, payload and tag bytes: a flip anywhere in the record is caught.
    for (const at of [s, s + 3, s + 4, s + Math.floor((e - s) / 2), e - 33, e - 1]) {
      const t = wire.slice();
      t[at] ^= 1 << Math.floor(next() * 8);
      await check(t, r, `flip at ${at - s} of record ${r}`);
      flips++;
    }
  }
  ok(flips >= 60, `${flips} flips`);
  const [s3, e3] = records[3], [s4, e4] = records[4];
  const forged = new TextEncoder().encode("S injected 0 0 1 0 0 4\r\nEVIL\r\n");
  await check(concatBytes(wire.subarray(0, s3), forged, wire.subarray(s3)), 3, "injected frame");
  await check(concatBytes(wire.subarray(0, s3), wire.subarray(e3)), 3, "dropped record");
  await check(
    concatBytes(wire.subarray(0, e3), wire.subarray(s3, e3), wire.subarray(e3)),
    4,
    "replayed record",
  );
  await check(
    concatBytes(wire.subarray(0, s3), wire.subarray(s4, e4), wire.subarray(s3, e3)),
    3,
    "reordered records",
  );
  const header = new Uint8Array(4);
  new DataView(header.buffer).setUint32(0, RECORD_MAX + 1);
  await check(concatBytes(wire.subarray(0, s3), header), 3, "overlong record");
  // Another link's records (other nonces) are worthless here.
  const other = deriveLinkKeys("s3cret", "other greetings", false);
  const opened = new OpenedConn(pieces(wire, next), other.recv);
  equal((await drain(opened)).length, 0);
  ok(opened.failure !== "");
});

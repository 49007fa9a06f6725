/**
 * ReadBuffer with a BufferPool: an idle connection keeps only its small
 * buffer, busy ones borrow pooled buffers and give them back, and a large
 * request's buffer does not stay (issue 9, item 8).
 * @module
 */

import { BufferPool, ReadBuffer } from "../../lib/transport/mod.ts";
import { equal, ok } from "../helpers/mod.ts";

/** A socket stand-in that hands out the queued chunks, one per read (as much as fits). */
class Chunks {
  #queue: Uint8Array[] = [];
  push(bytes: Uint8Array): void {
    this.#queue.push(bytes);
  }
  read(p: Uint8Array): Promise<number | null> {
    const next = this.#queue.shift();
    if (next === undefined) return Promise.resolve(null);
    const n = Math.min(p.length, next.length);
    p.set(next.subarray(0, n));
    if (n < next.length) this.#queue.unshift(next.subarray(n));
    return Promise.resolve(n);
  }
}

Deno.test("ReadBuffer with a pool keeps 1 KB while idle and lends 16 KB buffers while busy", async () => {
  const pool = new BufferPool(16384, 4);
  const src = new Chunks();
  const rb = new ReadBuffer(1024, undefined, pool);
  // A small request fits the idle buffer.
  src.push(new Uint8Array(100).fill(1));
  ok(await rb.fill(src));
  equal(rb.buf.length, 1024);
  rb.start = rb.end; // parsed
  // A pipelined burst fills it: the next read goes to a pooled buffer, bytes kept in order.
  const burst = new Uint8Array(5000).map((_, i) => i & 0xff);
  src.push(burst);
  ok(await rb.fill(src));
  equal(rb.end - rb.start, 1024);
  ok(await rb.fill(src));
  equal(rb.buf.length, 16384);
  equal(rb.end - rb.start, 5000);
  for (let i = 0; i < 5000; i++) {
    if (rb.buf[rb.start + i] !== (i & 0xff)) throw new Error(`byte ${i}`);
  }
  rb.start = rb.end;
  // Everything parsed: the pooled buffer goes back before the next (idle) read.
  src.push(new Uint8Array(10));
  ok(await rb.fill(src));
  equal(rb.buf.length, 1024);
  equal(pool.idle, 1);
  rb.start = rb.end;
  // A large request gets a buffer of its own, which does not stay after it.
  src.push(new Uint8Array(300_000));
  ok(await rb.fill(src, 300_000));
  ok(rb.buf.length >= 300_000);
  rb.start = rb.end;
  src.push(new Uint8Array(10));
  ok(await rb.fill(src));
  equal(rb.buf.length, 1024);
  equal(pool.idle, 1, "the large buffer is not pooled");
  rb.release();
  equal(pool.idle, 1);
});

Deno.test("ReadBuffer with a pool moves a small remainder out of a large buffer", async () => {
  const pool = new BufferPool(16384, 4);
  const src = new Chunks();
  const rb = new ReadBuffer(1024, undefined, pool);
  src.push(new Uint8Array(200_000).fill(7));
  ok(await rb.fill(src, 200_000));
  rb.start = rb.end - 10; // a partial next request remains
  src.push(new Uint8Array(5).fill(9));
  ok(await rb.fill(src));
  equal(rb.buf.length, 16384, "the remainder moved to a pooled buffer");
  equal(rb.end - rb.start, 15);
  equal(rb.buf[rb.start], 7);
  equal(rb.buf[rb.end - 1], 9);
});

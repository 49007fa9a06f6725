/**
 * The client's `lru_crawler metadump` stream: raw lines buffered between the
 * connection's read loop and a consumer that may be slower, parsed only as
 * they are taken.
 * @module
 */

import { type DumpEntry, LF, parseDumpEntry } from "../protocol/mod.ts";

/** Dump lines buffered for a slow consumer before reading pauses. */
const DUMP_HIGH_WATER = 8192;

/** Dump lines handed to the consumer per {@linkcode DumpSink.take}. */
const DUMP_TAKE = 4096;
/** Bytes per chunk of raw dump lines. */
const DUMP_CHUNK = 65536;

/**
 * Streamed `lru_crawler metadump` state between the read loop and the
 * consumer. Lines wait as raw bytes (about 70 per item, against several
 * hundred as parsed entries) and are parsed as the consumer takes them, so a
 * dump that piles up (`pause` false) costs little more than its text.
 */
export class DumpSink {
  /** Full chunks of "line\n" records, oldest first, then the one being filled. */
  #chunks: Uint8Array[] = [];
  #fill = new Uint8Array(DUMP_CHUNK);
  #used = 0;
  /** Position of the next unread line in #chunks[0] (or in #fill when there are none). */
  #read = 0;
  /** Lines waiting. */
  count = 0;
  /** The dump ended (see {@linkcode error}); no more lines come. */
  done = false;
  /** Resolves when the dump is over (ended, failed or abandoned). */
  readonly ended: Promise<void>;
  #onEnded!: () => void;
  /** Why the dump ended early (undefined: it ended with END, or not yet). */
  error: Error | undefined;
  /** The consumer gave up: lines still arriving are dropped. */
  discard = false;
  #wakeConsumer: (() => void) | undefined;
  #wakeReader: (() => void) | undefined;

  /** An empty sink, before the first line. */
  constructor() {
    this.ended = new Promise((r) => this.#onEnded = r);
  }

  /** Keep the dump line buf[start, end) (its text, without the line end). */
  push(buf: Uint8Array, start: number, end: number): void {
    if (this.discard) return;
    const n = end - start + 1;
    if (this.#used + n > this.#fill.length) {
      this.#chunks.push(this.#fill.subarray(0, this.#used));
      this.#fill = new Uint8Array(Math.max(DUMP_CHUNK, n));
      this.#used = 0;
    }
    this.#fill.set(buf.subarray(start, end), this.#used);
    this.#used += n;
    this.#fill[this.#used - 1] = LF;
    this.count++;
  }

  /** False: never pause reading, however far the consumer lags. */
  pause = true;

  /** Reading should pause: the consumer has this many lines waiting already. */
  get full(): boolean {
    return this.pause && this.count >= DUMP_HIGH_WATER;
  }

  /** Ends the dump (with `err` when it failed) and wakes both sides. */
  finish(err?: Error): void {
    if (this.done) return;
    this.done = true;
    this.error ??= err;
    this.#onEnded();
    this.wakeConsumer();
    this.wakeReader();
  }

  /** Wakes the consumer waiting for lines, if any. */
  wakeConsumer(): void {
    const w = this.#wakeConsumer;
    this.#wakeConsumer = undefined;
    w?.();
  }

  /** Wakes the read loop waiting for room, if any. */
  wakeReader(): void {
    const w = this.#wakeReader;
    this.#wakeReader = undefined;
    w?.();
  }

  /** Resolves when the consumer took entries (or the dump ended). */
  waitForSpace(): Promise<void> {
    if (!this.full || this.done) return Promise.resolve();
    return new Promise((r) => this.#wakeReader = r);
  }

  /** Resolves when entries arrived or the dump ended. */
  waitForEntries(): Promise<void> {
    if (this.count > 0 || this.done) return Promise.resolve();
    return new Promise((r) => this.#wakeConsumer = r);
  }

  /** Drop every waiting line. */
  clear(): void {
    this.#chunks = [];
    this.#used = this.#read = this.count = 0;
    this.wakeReader();
  }

  /** Up to {@linkcode DUMP_TAKE} waiting lines, parsed (malformed lines are dropped). */
  take(): DumpEntry[] {
    const out: DumpEntry[] = [];
    while (out.length < DUMP_TAKE && this.count > 0) {
      const chunk = this.#chunks.length > 0 ? this.#chunks[0] : this.#fill;
      const end = this.#chunks.length > 0 ? chunk.length : this.#used;
      if (this.#read >= end) {
        if (this.#chunks.length === 0) break;
        this.#chunks.shift();
        this.#read = 0;
        continue;
      }
      const lf = chunk.indexOf(LF, this.#read);
      const e = parseDumpEntry(chunk, this.#read, lf);
      if (e !== undefined) out.push(e);
      this.#read = lf + 1;
      this.count--;
    }
    if (this.count === 0) {
      this.#chunks = [];
      this.#used = this.#read = 0;
    }
    this.wakeReader();
    return out;
  }
}

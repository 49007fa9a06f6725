/**
 * The backlog: a ring of this node's change frames, addressed by stream
 * offset (bytes since the stream began). The link sends straight from it,
 * and a peer that reconnects with an offset still inside it resumes from
 * there (partial resync) instead of taking a full copy.
 * @module
 */

import type { Writer } from "../protocol/mod.ts";

const INITIAL = 1 << 20;
/** Forwarded runs remembered (older ones are forgotten: those bytes go to every peer again). */
const MAX_RUNS = 65536;

/** A run of bytes passed on from a peer's stream (a group), for {@linkcode ForwardPolicy}. */
export interface ForwardedRun {
  /** The member whose stream the bytes came from. */
  readonly origin: number;
  /** That member's stream id. */
  readonly stream: string;
  /** Where the run's end lies in that stream (the bytes are contiguous there too). */
  readonly originEnd: number;
  /** performance.now() when its first bytes arrived. */
  readonly time: number;
}

/**
 * How one reader (a link) treats the runs passed on from other members'
 * streams: what it may leave out, and whether to wait for news first.
 */
export interface ForwardPolicy {
  /** How far the reader holds `run.origin`'s stream `run.stream` (-1: not known). */
  has(run: ForwardedRun): number;
  /** Whether to stop before the run's bytes the reader lacks (it may learn them directly). */
  hold(run: ForwardedRun): boolean;
}

/** A new run starts after this long (ms), so that a run's time says when its bytes arrived. */
const RUN_SPAN_MS = 4;

/** A {@linkcode ForwardedRun} as the backlog keeps it (a run grows). */
interface Run {
  origin: number;
  stream: string;
  originEnd: number;
  time: number;
}

/** A bounded byte ring with monotonically growing logical offsets. */
export class Backlog {
  #buf: Uint8Array;
  #capacity: number;
  #start = 0;
  #end = 0;
  // Runs of bytes forwarded from a peer's stream (a group), ascending: [start, end) and whence.
  #runStart: number[] = [];
  #runEnd: number[] = [];
  #runs: Run[] = [];
  #runHead = 0;

  /** A ring holding at most `capacity` bytes (allocated as it fills). */
  constructor(capacity: number) {
    this.#capacity = Math.max(4096, capacity);
    this.#buf = new Uint8Array(Math.min(this.#capacity, INITIAL));
  }

  /** Oldest offset still held. */
  get start(): number {
    return this.#start;
  }

  /** Offset of the next byte appended (the stream position). */
  get end(): number {
    return this.#end;
  }

  /** Bytes held now. */
  get used(): number {
    return this.#end - this.#start;
  }

  /** Maximum bytes held. */
  get capacity(): number {
    return this.#capacity;
  }

  /** True while `offset` can still be read (start <= offset <= end). */
  holds(offset: number): boolean {
    return offset >= this.#start && offset <= this.#end;
  }

  /** Append src[start, end); the oldest bytes are dropped when full. */
  push(src: Uint8Array, start = 0, end: number = src.length): void {
    let n = end - start;
    if (n <= 0) return;
    if (this.#end - this.#start + n > this.#buf.length && this.#buf.length < this.#capacity) {
      this.#grow(this.#end - this.#start + n);
    }
    const size = this.#buf.length;
    if (n > size) {
      // Larger than the whole ring: only its tail survives.
      this.#end += n - size;
      start = end - size;
      n = size;
    }
    const at = this.#end % size;
    const first = Math.min(n, size - at);
    this.#buf.set(src.subarray(start, start + first), at);
    if (first < n) this.#buf.set(src.subarray(start + first, end), 0);
    this.#end += n;
    if (this.#end - this.#start > size) this.#start = this.#end - size;
  }

  /**
   * Append src[start, end), a change of `origin`'s stream `stream` ending
   * at `originEnd` there, passed on (a group): a reader that has those bytes
   * from `origin` may leave them out ({@linkcode sendTo}).
   */
  pushFrom(
    src: Uint8Array,
    start: number,
    end: number,
    origin: number,
    stream: string,
    originEnd: number,
    now: number,
  ): void {
    const at = this.#end;
    this.push(src, start, end);
    if (this.#end - at !== end - start) return; // larger than the ring: not worth a run
    const last = this.#runEnd.length - 1;
    const r = last >= this.#runHead ? this.#runs[last] : null;
    if (
      r !== null && this.#runEnd[last] === at && r.origin === origin && r.stream === stream &&
      r.originEnd === originEnd - (end - start) && now - r.time < RUN_SPAN_MS
    ) {
      // Contiguous here and there: one run, whose bytes map to the origin's stream by offset.
      this.#runEnd[last] = this.#end;
      r.originEnd = originEnd;
      return;
    }
    this.#runStart.push(at);
    this.#runEnd.push(this.#end);
    this.#runs.push({ origin, stream, originEnd, time: now });
    if (this.#runEnd.length - this.#runHead > MAX_RUNS) this.#runHead++;
    while (this.#runHead < this.#runEnd.length && this.#runEnd[this.#runHead] <= this.#start) {
      this.#runHead++;
    }
    if (this.#runHead > 4096 && this.#runHead * 2 > this.#runEnd.length) {
      this.#runStart.splice(0, this.#runHead);
      this.#runEnd.splice(0, this.#runHead);
      this.#runs.splice(0, this.#runHead);
      this.#runHead = 0;
    }
  }

  /**
   * Changes were lost before reaching the backlog: leave a one-byte gap and
   * hold nothing, so every reader (a link, a resuming peer) falls back to a
   * full copy.
   */
  skip(): void {
    this.#end += 1;
    this.#start = this.#end;
  }

  /**
   * Start over at offset `start` holding `bytes` (offsets [start, start +
   * length)): a warm restart continues a saved stream. When `bytes` exceed
   * the capacity, only their tail is held.
   */
  restore(start: number, bytes: Uint8Array): void {
    this.#start = start;
    this.#end = start;
    this.push(bytes);
  }

  /** Append the bytes at offsets [from, to) to `out`; the range must be held. */
  copyTo(out: Writer, from: number, to: number): void {
    this.#copy(out, from, to);
  }

  /**
   * Append the bytes at offsets [from, to) for one reader (a group's link):
   * of each forwarded run, what `policy` says the reader has is left out,
   * `skip(out, n)` written in place (n bytes); before the rest of a run
   * that `policy` holds, it stops. Returns the offset reached.
   */
  sendTo(
    out: Writer,
    from: number,
    to: number,
    policy: ForwardPolicy,
    skip: (out: Writer, n: number) => void,
  ): number {
    if (this.#runEnd.length > this.#runHead) {
      // The first run ending after `from` (runs ascend), then each in range.
      let lo = this.#runHead, hi = this.#runEnd.length;
      while (lo < hi) {
        const mid = (lo + hi) >> 1;
        if (this.#runEnd[mid] <= from) lo = mid + 1;
        else hi = mid;
      }
      for (let i = lo; i < this.#runEnd.length && this.#runStart[i] < to; i++) {
        const run = this.#runs[i], end = this.#runEnd[i];
        const a = Math.max(from, this.#runStart[i]), b = Math.min(to, end);
        if (a > from) this.#copy(out, from, a);
        from = a;
        // Byte x of the run is at originEnd - (end - x) in the origin's stream.
        const h = policy.has(run);
        const has = h < 0 ? from : Math.min(b, end - (run.originEnd - h));
        if (has > from) {
          skip(out, has - from);
          from = has;
        }
        if (from < b) {
          if (policy.hold(run)) return from;
          this.#copy(out, from, b);
          from = b;
        }
      }
    }
    if (from < to) this.#copy(out, from, to);
    return to;
  }

  #copy(out: Writer, from: number, to: number): void {
    const size = this.#buf.length;
    const a = from % size;
    const n = to - from;
    const first = Math.min(n, size - a);
    out.bytes(this.#buf, a, a + first);
    if (first < n) out.bytes(this.#buf, 0, n - first);
  }

  #grow(need: number): void {
    let size = this.#buf.length;
    while (size < need && size < this.#capacity) size *= 2;
    size = Math.min(size, this.#capacity);
    const next = new Uint8Array(size);
    const old = this.#buf;
    for (let off = this.#start; off < this.#end;) {
      const a = off % old.length;
      const n = Math.min(this.#end - off, old.length - a);
      const b = off % size;
      const m = Math.min(n, size - b);
      next.set(old.subarray(a, a + m), b);
      if (m < n) next.set(old.subarray(a + m, a + n), 0);
      off += n;
    }
    this.#buf = next;
  }
}

/** {@linkcode AgreedVersions} as plain numbers: the base point and the samples, oldest first. */
export interface AgreementState {
  /** Offset of the newest sample the peer acknowledged. */
  baseOffset: number;
  /** Versions up to this the peer has. */
  baseVersion: number;
  /** Sample offsets, ascending. */
  offsets: number[];
  /** Sample versions (each: everything of ours up to it lies before its offset). */
  versions: number[];
}

/** Samples of (stream offset, version) kept for changes the peer has not acknowledged. */
const AGREEMENT_SAMPLES = 4096;

/**
 * Which versions the peer has seen of this node's stream: a sample
 * (offset, v) says every change of ours with a version up to v lies before
 * `offset`, so a peer that applied the stream up to there has all of them.
 * Samples are taken at most once per millisecond (coarser is conservative:
 * a smaller version), in bounded memory; once the peer caught up with
 * everything, the clock itself is such a sample.
 */
export class AgreedVersions {
  #offsets = new Float64Array(AGREEMENT_SAMPLES);
  #versions = new Float64Array(AGREEMENT_SAMPLES);
  #head = 0;
  #count = 0;
  #lastAt = -Infinity;
  #baseOffset = 0;
  #baseVersion = 0;

  /** A change of version `version` is about to be appended at stream offset `offset`. */
  note(offset: number, version: number, now: number): void {
    if (this.#count === AGREEMENT_SAMPLES || (this.#count > 0 && now - this.#lastAt < 1)) return;
    const i = (this.#head + this.#count) % AGREEMENT_SAMPLES;
    this.#offsets[i] = offset;
    this.#versions[i] = version - 1;
    this.#count++;
    this.#lastAt = now;
  }

  /** The peer applied our stream up to `offset`. */
  acked(offset: number): void {
    while (this.#count > 0 && this.#offsets[this.#head] <= offset) {
      this.#baseOffset = this.#offsets[this.#head];
      this.#baseVersion = Math.max(this.#baseVersion, this.#versions[this.#head]);
      this.#head = (this.#head + 1) % AGREEMENT_SAMPLES;
      this.#count--;
    }
  }

  /** The peer applied all of our stream (up to `end`) while the clock stood at `clock`. */
  caughtUp(end: number, clock: number): void {
    this.acked(end);
    if (this.#count > 0) return; // a change came meanwhile
    this.#baseOffset = end;
    this.#baseVersion = Math.max(this.#baseVersion, clock);
  }

  /** The samples as plain numbers (a warm restart saves them). */
  save(): AgreementState {
    const offsets: number[] = [], versions: number[] = [];
    for (let k = 0; k < this.#count; k++) {
      const i = (this.#head + k) % AGREEMENT_SAMPLES;
      offsets.push(this.#offsets[i]);
      versions.push(this.#versions[i]);
    }
    return { baseOffset: this.#baseOffset, baseVersion: this.#baseVersion, offsets, versions };
  }

  /** Take over the samples a stopped process saved (its stream goes on here). */
  restore(state: AgreementState): void {
    this.#baseOffset = state.baseOffset;
    this.#baseVersion = state.baseVersion;
    this.#head = 0;
    this.#count = Math.min(AGREEMENT_SAMPLES, state.offsets.length, state.versions.length);
    for (let i = 0; i < this.#count; i++) {
      this.#offsets[i] = state.offsets[i];
      this.#versions[i] = state.versions[i];
    }
    this.#lastAt = -Infinity;
  }

  /** The largest version v such that a peer that applied our stream up to `offset` has all of ours up to v. */
  upTo(offset: number): number {
    if (offset < this.#baseOffset) return 0; // older than what we track: nothing is known
    let v = this.#baseVersion;
    for (let k = 0; k < this.#count; k++) {
      const i = (this.#head + k) % AGREEMENT_SAMPLES;
      if (this.#offsets[i] > offset) break;
      v = Math.max(v, this.#versions[i]);
    }
    return v;
  }
}

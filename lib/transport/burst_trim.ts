/**
 * Giving a connection burst's memory back. Every open connection holds a
 * few KB of JS state (its loop, promises, buffers, Deno's TcpConn) that
 * lives as long as it does, so V8 promotes it to the old generation and
 * grows the heap to hold thousands of them. Once they close, V8 collects
 * them but keeps the grown heap committed until its memory reducer runs
 * (tens of seconds of idleness, and not at all while requests keep
 * coming): 8 bursts of 5,000 connections left ~150 MB of RSS behind.
 *
 * {@linkcode BurstTrim} counts one thread's connections; when three
 * quarters of a burst of at least {@linkcode BURST} have closed and the
 * rest stopped closing in bulk (fewer than BURST/4 closes in
 * {@linkcode QUIET_MS}: a trickle of short connections does not put it
 * off), it runs one memory-reducing collection (V8's last-resort flavour:
 * compacts, returns free pages to the OS; a pause of tens of ms, up to
 * ~200 ms seen on a loaded 2-core machine, once per burst).
 * Smaller ups and downs never trigger it.
 * @module
 */

// node:v8 and node:vm load on demand: Deno's Node layer for them costs a start ~10 ms,
// and a server should answer as soon as it can (client test kits allow ~0.1 s).
let nodeV8: typeof import("node:v8") | undefined;
let nodeVm: typeof import("node:vm") | undefined;
let loading: Promise<void> | undefined;

/**
 * Loads what {@linkcode trimHeap} needs outside `--expose-gc`; a
 * {@linkcode BurstTrim} starts it once a burst is half there.
 */
export function loadCollector(): Promise<void> {
  loading ??= Promise.all([import("node:v8"), import("node:vm")]).then(([v8, vm]) => {
    nodeV8 = v8;
    nodeVm = vm;
  }, () => {});
  return loading;
}

/** Connections open at once on one thread from which their closing is a burst worth trimming. */
export const BURST = 256;
/** Window in which fewer than BURST/4 closes mean a burst has done closing (ms). */
export const QUIET_MS = 250;

type GcFunction = (options?: { type: string; execution: string; flavor?: string }) => unknown;

let collector: GcFunction | undefined;

/**
 * V8's gc(), or null where it cannot be had. Outside `--expose-gc` it is
 * taken from a fresh context created with the flag set for that moment.
 */
function gcFunction(): GcFunction | null {
  if (collector) return collector;
  const exposed = (globalThis as { gc?: unknown }).gc;
  if (typeof exposed === "function") return collector = exposed as GcFunction;
  if (nodeV8 === undefined || nodeVm === undefined) return null; // (not loaded yet)
  try {
    // V8 flags are per process: the flag stays on, since turning it off again could race
    // another serve thread between its setting and its new context (that thread then never
    // trimmed).
    nodeV8.setFlagsFromString("--expose-gc");
    const gc: unknown = nodeVm.runInNewContext("gc");
    if (typeof gc === "function") collector = gc as GcFunction;
  } catch {
    // No gc: the heap shrinks when V8's own memory reducer runs (tried again next burst).
  }
  return collector ?? null;
}

/** Shrink the heap now; false when no collector is available. */
export function trimHeap(): boolean {
  const gc = gcFunction();
  if (gc === null) return false;
  gc({ type: "major", execution: "sync", flavor: "last-resort" });
  return true;
}

/** One thread's connection count, trimming the heap after a burst (see the module doc). */
export class BurstTrim {
  #live = 0;
  #peak = 0;
  #closes = 0;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #trimmed: () => void;
  #trim: () => boolean;
  #quietMs: number;

  /** `trimmed` counts a trim done (`heap_trims`); `trim` shrinks the heap. */
  constructor(trimmed: () => void, trim: () => boolean = trimHeap, quietMs = QUIET_MS) {
    this.#trimmed = trimmed;
    this.#trim = trim;
    this.#quietMs = quietMs;
  }

  /** A connection opened. */
  opened(): void {
    if (++this.#live > this.#peak) this.#peak = this.#live;
    if (this.#live === BURST / 2) void loadCollector(); // loaded before the burst ends
  }

  /** A connection closed. */
  closed(): void {
    this.#live--;
    if (this.#peak < BURST || this.#live * 4 > this.#peak) return;
    this.#closes++;
    this.#timer ??= this.#arm();
  }

  /** Stop the pending trim (server stop). */
  close(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  #arm(): ReturnType<typeof setTimeout> {
    const timer = setTimeout(() => this.#fire(), this.#quietMs);
    Deno.unrefTimer(timer as unknown as number);
    return timer;
  }

  #fire(): void {
    this.#timer = undefined;
    const closes = this.#closes;
    this.#closes = 0;
    if (this.#live * 4 > this.#peak) return; // a new burst: its own end trims
    if (closes * 4 >= BURST) {
      this.#timer = this.#arm(); // the burst is still closing
      return;
    }
    this.#peak = this.#live;
    if (this.#trim()) this.#trimmed();
  }
}

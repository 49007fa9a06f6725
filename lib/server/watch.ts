/**
 * `watch`: connections that receive memcached's log lines (logger.c's
 * formats) for fetches, stores and connection events of every serve thread.
 * Emitters check {@linkcode Watchers.active} first, so with nobody
 * watching an event costs one boolean test. With serve threads the count of
 * watchers lives in shared memory (each thread refreshes `active` from it
 * once per batch) and a thread's lines go to the others' watchers through
 * {@linkcode Watchers.forward}, one message per batch. Each watcher buffers at most
 * memcached's watcher_logbuf_size (256 KB unless -o sets it); lines that do not fit are
 * counted and reported as `skipped=N`, as memcached does.
 * @module
 */

import type { Writer } from "../protocol/mod.ts";

/** memcached's LOG_* flags the `watch` arguments select. */
export const WatchFlag = {
  FETCHERS: 1,
  MUTATIONS: 2,
  EVICTIONS: 4,
  CONNEVENTS: 8,
  /** Accepted names memrep has no events for (rawcmds, sysevents, proxy*). */
  OTHER: 16,
} as const;

const NAMES: Record<string, number> = {
  fetchers: WatchFlag.FETCHERS,
  mutations: WatchFlag.MUTATIONS,
  evictions: WatchFlag.EVICTIONS,
  connevents: WatchFlag.CONNEVENTS,
  rawcmds: WatchFlag.OTHER,
  sysevents: WatchFlag.OTHER,
  proxyreqs: WatchFlag.OTHER,
  proxyevents: WatchFlag.OTHER,
  proxyuser: WatchFlag.OTHER,
};

/** The flags for `watch` arguments, or -1 for an unknown one (memcached: ERROR). */
export function watchFlags(args: string[]): number {
  if (args.length === 0) return WatchFlag.FETCHERS;
  let f = 0;
  for (const a of args) {
    const bit = NAMES[a];
    if (bit === undefined) return -1;
    f |= bit;
  }
  return f;
}

/** memcached's limit of watchers (LOGGER_MAX_WATCHERS). */
const MAX_WATCHERS = 20;
/** memcached's default watcher_logbuf_size. */
const BUFFER_LIMIT = 256 * 1024;

/** One watching connection's queue. */
export class Watcher {
  /** Its selected event flags. */
  readonly flags: number;
  #lines: string[] = [];
  #bytes = 0;
  #skipped = 0;
  #limit: number;
  #wake: (() => void) | null = null;

  /** A watcher of the events in `flags`, buffering up to `limit` bytes (-o watcher_logbuf_size). */
  constructor(flags: number, limit = BUFFER_LIMIT) {
    this.flags = flags;
    this.#limit = limit;
  }

  /** Queue one line (dropped and counted when the buffer is full). */
  push(line: string): void {
    if (this.#bytes + line.length > this.#limit) {
      this.#skipped++;
      return;
    }
    this.#lines.push(line);
    this.#bytes += line.length;
    this.#wake?.();
  }

  /** Appends what is queued to `out` (the connection then writes it). */
  drain(out: Writer): void {
    if (this.#skipped > 0) {
      out.text(`skipped=${this.#skipped}\n`);
      this.#skipped = 0;
    }
    for (const l of this.#lines) out.text(l);
    this.#lines = [];
    this.#bytes = 0;
  }

  /** Resolves once something is queued. */
  wait(): Promise<void> {
    if (this.#lines.length > 0 || this.#skipped > 0) return Promise.resolve();
    return new Promise((resolve) => {
      this.#wake = () => {
        this.#wake = null;
        resolve();
      };
    });
  }

  /** Wakes a waiting connection so it can notice it is closing. */
  cancel(): void {
    this.#wake?.();
  }
}

/** memcached's uriencode for keys in log lines. */
function uriKey(buf: Uint8Array, start: number, end: number): string {
  let s = "";
  for (let i = start; i < end; i++) {
    const c = buf[i];
    const plain = (c >= 48 && c <= 57) || (c >= 65 && c <= 90) || (c >= 97 && c <= 122) ||
      c === 45 || c === 46 || c === 95 || c === 126;
    s += plain ? String.fromCharCode(c) : "%" + c.toString(16).toUpperCase().padStart(2, "0");
  }
  return s;
}

/** memcached's "ts=<sec>.<usec> gid=<n> " prefix (usec not zero-padded, as its %d). */
function prefix(gid: number): string {
  const us = Math.floor((performance.timeOrigin + performance.now()) * 1000);
  return `ts=${Math.floor(us / 1e6)}.${us % 1e6} gid=${gid} `;
}

const STORE_STATUS = ["not_stored", "stored", "exists", "not_found", "too_large", "no_memory"];

/** Slots of the threads' shared registry (see {@linkcode Watchers.share}). */
const WATCHING = 1;
const GID = 2;

/** The watchers of one serve thread. */
export class Watchers {
  /** True while anyone watches (on any thread): emitters test this first. */
  active = false;
  /**
   * Sends lines and their flags to the other threads' watchers (set with
   * serve threads); they hand them to {@linkcode deliver}.
   */
  forward: ((lines: string[], flags: number[]) => void) | null = null;
  #outLines: string[] = [];
  #outFlags: number[] = [];
  #list: Watcher[] = [];
  #gid = 0;
  #shared: Int32Array | null = null;

  /**
   * Count watchers and number lines in `registry`, shared by the serve
   * threads (memcached's watchers and gids are global too).
   */
  share(registry: Int32Array): void {
    this.#shared = registry;
    if (this.#list.length > 0) Atomics.add(registry, WATCHING, this.#list.length);
  }

  /** Re-read whether anyone watches on any thread (once per batch). */
  refresh(): void {
    const shared = this.#shared;
    if (shared !== null) this.active = Atomics.load(shared, WATCHING) > 0;
  }

  /** Watchers on every thread (`stats` log_watchers). */
  get count(): number {
    const shared = this.#shared;
    return shared === null ? this.#list.length : Atomics.load(shared, WATCHING);
  }

  /** Adds a watcher; false when memcached's limit of 20 is reached. */
  add(w: Watcher): boolean {
    const shared = this.#shared;
    const all = shared === null ? this.#list.length : Atomics.load(shared, WATCHING);
    if (all >= MAX_WATCHERS) return false;
    this.#list.push(w);
    if (shared !== null) Atomics.add(shared, WATCHING, 1);
    this.active = true;
    return true;
  }

  /** Removes a watcher (its connection closed). */
  remove(w: Watcher): void {
    const before = this.#list.length;
    this.#list = this.#list.filter((x) => x !== w);
    if (this.#shared !== null) {
      if (this.#list.length < before) Atomics.sub(this.#shared, WATCHING, 1);
      this.refresh();
    } else this.active = this.#list.length > 0;
  }

  /** Lines other threads emitted: each to this thread's watchers of its kind. */
  deliver(lines: string[], flags: number[]): void {
    for (let i = 0; i < lines.length; i++) this.#deliver(lines[i], flags[i]);
  }

  #deliver(line: string, flag: number): void {
    for (const w of this.#list) if (w.flags & flag) w.push(line);
  }

  /** Send the lines queued for other threads (end of a batch, or after a connection event). */
  sendForwarded(): void {
    if (this.#outLines.length === 0) return;
    const lines = this.#outLines, flags = this.#outFlags;
    this.#outLines = [];
    this.#outFlags = [];
    this.forward?.(lines, flags);
  }

  #emit(flag: number, body: string): void {
    const shared = this.#shared;
    const gid = shared === null ? ++this.#gid : Atomics.add(shared, GID, 1) + 1;
    const line = prefix(gid) + body + "\n";
    this.#deliver(line, flag);
    if (shared !== null && Atomics.load(shared, WATCHING) > this.#list.length) {
      // At most 256 KB reach a watcher between its writes: queue no more than that.
      if (this.#outLines.length < 4096) {
        this.#outLines.push(line);
        this.#outFlags.push(flag);
      }
    }
  }

  /**
   * The connection running commands now (its `stats conns` id), shown as
   * `cfd` in item lines as memcached shows the fd, which is its id there.
   */
  cfd = 0;

  /** An item_get: `found` or `not_found`, with the item's class and value size. */
  fetched(buf: Uint8Array, start: number, end: number, found: boolean, cls: number, size: number) {
    this.#emit(
      WatchFlag.FETCHERS,
      `type=item_get key=${uriKey(buf, start, end)} status=${
        found ? "found" : "not_found"
      } clsid=${cls} cfd=${this.cfd} size=${size}`,
    );
  }

  /**
   * An item_store: `status` indexes memcached's status names (0 not_stored,
   * 1 stored, 2 exists, 3 not_found, 4 too_large, 5 no_memory).
   */
  stored(
    buf: Uint8Array,
    start: number,
    end: number,
    status: number,
    cmd: string,
    ttl: number,
    cls: number,
    size: number,
  ) {
    this.#emit(
      WatchFlag.MUTATIONS,
      `type=item_store key=${uriKey(buf, start, end)} status=${
        STORE_STATUS[status]
      } cmd=${cmd} ttl=${ttl} clsid=${cls} cfd=${this.cfd} size=${size}`,
    );
  }

  /** An eviction: `ttl` left (-1: none), seconds since last access, fetched or not. */
  evicted(
    buf: Uint8Array,
    start: number,
    end: number,
    fetched: boolean,
    ttl: number,
    la: number,
    cls: number,
    size: number,
  ) {
    this.#emit(
      WatchFlag.EVICTIONS,
      `type=eviction key=${uriKey(buf, start, end)} fetch=${
        fetched ? "yes" : "no"
      } ttl=${ttl} la=${la} clsid=${cls} size=${size}`,
    );
  }

  /** conn_new / conn_close for a peer (`tcp`, or `local`: unix-domain); `cfd` is its connection id. */
  connection(
    open: boolean,
    ip: string,
    port: number,
    reason: "normal" | "error" = "normal",
    cfd = 0,
    transport = "tcp",
  ) {
    this.#emit(
      WatchFlag.CONNEVENTS,
      open
        ? `type=conn_new rip=${ip} rport=${port} transport=${transport} cfd=${cfd}`
        : `type=conn_close rip=${ip} rport=${port} transport=${transport} reason=${reason} cfd=${cfd}`,
    );
  }
}

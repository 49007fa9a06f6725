/**
 * Where `replicate` reads items from: a live server (enumerated with
 * `lru_crawler metadump hash`, or `all` on servers before 1.6.9, values fetched with pipelined `mg <key> v f t`) or
 * a dump file. Both yield batches of {@linkcode CopyItem}.
 * @module
 */

import {
  Client,
  type ClientOptions,
  errorDetail,
  type FrameHandler,
  type Reply,
  ReplyKind,
  serverName,
} from "../client/mod.ts";
import { ascii, base64Key, carveCopy, decodeAscii, isTextKey, Op } from "../protocol/mod.ts";
import { errorText } from "../transport/mod.ts";
import { type ByteSource, DumpReader } from "./dump_format.ts";

/** One item on its way from a source to the targets. */
export interface CopyItem {
  /** Key bytes. */
  key: Uint8Array;
  /** Value bytes. */
  value: Uint8Array;
  /** Client flags. */
  flags: number;
  /** Absolute expiry in unix seconds (local clock); 0 = never. */
  exp: number;
}

/** Why a copy cannot go on (bad source, lost connection...). */
export class CopyError extends Error {
  /** Builds the error. */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "CopyError";
  }
}

/** Key filter and stop conditions shared by the sources. */
export interface SourceOptions {
  /** Keep only keys for which this returns true. */
  match?: (key: Uint8Array) => boolean;
  /** Stop after this many matching keys. */
  limit?: number;
  /** Stop listing when aborted (Ctrl-C). */
  signal?: AbortSignal;
  /** Items per batch (and per pipeline window). Default 1000. */
  batchSize?: number;
  /**
   * Called as each batch of a server source starts, before any of its `mg`s
   * is sent; batches are yielded in that order (the last call may be for a
   * batch that stays empty). Lets a caller note what it knew before reading.
   */
  onBatch?: () => void;
}

/** Counters a source keeps while listing. */
export interface SourceCounts {
  /** Keys listed that matched (attempted). */
  listed: number;
  /** Listed but gone (expired or evicted) by the time they were fetched. */
  missing: number;
  /** Read from a dump but expired since it was written. */
  expired: number;
  /** Fetches the server refused (see {@linkcode Source.errors}). */
  failed: number;
}

/** A source of items. */
export interface Source {
  /** What the items come from, for messages (`host:port` or the file). */
  readonly name: string;
  /** Listing counters. */
  readonly counts: SourceCounts;
  /** How many items to expect, when known (for the progress ETA). */
  readonly estimate: number | undefined;
  /** Share of the input read so far (0..1), when the item count is unknown. */
  fraction?(): number | undefined;
  /** Batches of items; views stay valid until the next batch is requested. */
  batches(): AsyncGenerator<CopyItem[]>;
  /** Messages about refused fetches, each naming the source and a count. */
  errors(): string[];
  /** Releases connections / files. */
  close(): void;
}

/**
 * Bytes of items per batch: a few batches are held at once (two fetching, one
 * storing, plus the targets' send buffers), so this bounds the copier's memory
 * when items are large; 1,000 items of 1 MB would be a gigabyte each.
 */
const BATCH_BYTES = 4 << 20;

const MG_HEAD = ascii("mg ");
const MG_TAIL = ascii(" v f t\r\n");
const MG_TAIL_B64 = ascii(" b v f t\r\n");

/** Seconds since the epoch, local clock. */
export function nowSeconds(): number {
  return Math.floor(Date.now() / 1000);
}

/** Parses "1.6.18..." into [1, 6, 18]; undefined when not numeric. */
export function parseVersion(text: string): [number, number, number] | undefined {
  const m = /^(\d+)\.(\d+)(?:\.(\d+))?/.exec(text.trim());
  return m ? [Number(m[1]), Number(m[2]), Number(m[3] ?? 0)] : undefined;
}

/** How to list a server's keys: which metadump walk, and whether reading may pause. */
export interface DumpWalk {
  /** `hash` sees every item once; `all` walks the LRUs and can miss items moving between them. */
  what: "hash" | "all";
  /** Whether reading the dump may pause while the fetches catch up. */
  pause: boolean;
}

/**
 * Picks the metadump walk for a server version. "hash" (memcached >= 1.6.9)
 * walks the hash table and sees every item once, so it is preferred. But
 * 1.6.9 to 1.6.18 write that dump while holding an item lock: a reader that
 * pauses stalls lookups on the server (ours and everyone's), so there the
 * listing is read without pause and buffered in memory. Older servers only
 * have the LRU walk "all". memrep serves both.
 */
export function dumpWalk(version: string): DumpWalk {
  if (/memrep/i.test(version)) return { what: "hash", pause: true };
  const v = parseVersion(version);
  if (v === undefined) return { what: "hash", pause: true };
  const [major, minor, patch] = v;
  const atLeast = (a: number, b: number, c: number) =>
    major !== a ? major > a : minor !== b ? minor > b : patch >= c;
  if (atLeast(1, 6, 19)) return { what: "hash", pause: true };
  if (atLeast(1, 6, 9)) return { what: "hash", pause: false };
  return { what: "all", pause: true };
}

/**
 * One batch of pipelined `mg` requests. Replies are taken in place from the
 * client's read buffer (no Reply object each); values are copied once, with
 * {@linkcode carveCopy}.
 */
class FetchBatch {
  readonly keys: Uint8Array[] = [];
  /** When each key's mg was sent (unix s). */
  readonly #sent: number[] = [];
  /** The listed sizes of its items. */
  bytes = 0;
  readonly done: Promise<void>;
  readonly #items: CopyItem[] = [];
  #received = 0;
  #sealed = false;
  #resolve: () => void;
  #reject: (err: Error) => void;
  readonly #onFrame: FrameHandler;
  readonly #onError = (err: Error) => this.#reject(err);

  constructor(source: ServerSource, counts: SourceCounts) {
    const { promise, resolve, reject } = Promise.withResolvers<void>();
    promise.catch(() => {}); // awaited by items()
    this.done = promise;
    this.#resolve = resolve;
    this.#reject = reject;
    this.#onFrame = (buf, start, length, parser) => {
      const key = this.keys[this.#received++];
      if (parser.kind === ReplyKind.VA) {
        // t: remaining seconds, -1 never; a server that does not report it keeps no TTL.
        // Counted from when the mg was sent (the server answered after, so the copy never
        // outlives the item), not from the batch's start: a batch can wait seconds on a
        // stalled target before its first mg goes.
        const ttl = parser.ttl;
        const exp = ttl < 0 ? 0 : this.#sent[this.#received - 1] + Math.max(ttl, 1);
        const value = carveCopy(buf, parser.valueStart, parser.valueEnd);
        this.#items.push({ key, value, flags: parser.flags, exp });
      } else if (parser.kind === ReplyKind.EN) counts.missing++;
      else {
        let e = buf.indexOf(13, start);
        if (e < 0 || e > start + length) e = start + length;
        source.refused(decodeAscii(buf, start, Math.min(e, start + 200)));
      }
      if (this.#sealed && this.#received === this.keys.length) this.#resolve();
    };
  }

  /** Queue `mg` for `key` on `client`. */
  fetch(client: Client, key: Uint8Array): void {
    this.keys.push(key);
    this.#sent.push(nowSeconds());
    const parts = isTextKey(key) ? [MG_HEAD, key, MG_TAIL] : [MG_HEAD, base64Key(key), MG_TAIL_B64];
    client.requestFrame(Op.MG, parts, this.#onFrame, this.#onError);
  }

  /** No more keys: {@linkcode items} resolves once every reply is in. */
  seal(): void {
    this.#sealed = true;
    if (this.#received === this.keys.length) this.#resolve();
  }

  /** The items that had a value. */
  async items(): Promise<CopyItem[]> {
    await this.done;
    return this.#items;
  }
}

/** Items of a live memcached (>= 1.5) or memrep server. */
export class ServerSource implements Source {
  readonly name: string;
  readonly counts: SourceCounts = { listed: 0, missing: 0, expired: 0, failed: 0 };
  readonly estimate: number | undefined;
  readonly #list: Client;
  readonly #fetch: Client;
  readonly #options: SourceOptions;
  readonly #walk: DumpWalk;
  readonly #refused = new Map<string, number>();

  private constructor(
    name: string,
    list: Client,
    fetch: Client,
    estimate: number | undefined,
    options: SourceOptions,
    walk: DumpWalk,
  ) {
    this.name = name;
    this.#walk = walk;
    this.#list = list;
    this.#fetch = fetch;
    this.estimate = estimate;
    this.#options = options;
  }

  /**
   * Connects twice (one connection streams the key listing, the other
   * fetches values) and checks the server can list its keys.
   */
  static async open(
    host: string,
    port: number,
    options: SourceOptions = {},
    clientOptions: ClientOptions = {},
  ): Promise<ServerSource> {
    const name = serverName(host, port);
    let list: Client | undefined;
    let fetch: Client | undefined;
    try {
      list = await Client.connect(host, port, clientOptions);
      fetch = await Client.connect(host, port, clientOptions);
    } catch (err) {
      list?.close();
      throw new CopyError(`cannot connect to source ${name}: ${errorDetail(err)}`, { cause: err });
    }
    try {
      const version = await fetch.version();
      const v = parseVersion(version);
      if (v !== undefined && (v[0] < 1 || (v[0] === 1 && v[1] < 5))) {
        throw new CopyError(
          `source ${name} runs memcached ${version}: listing keys needs ` +
            `'lru_crawler metadump' and meta commands (memcached >= 1.5)`,
        );
      }
      const stats = await fetch.stats().catch(() => new Map<string, string>());
      const items = Number(stats.get("curr_items"));
      const estimate = Number.isFinite(items) ? items : undefined;
      return new ServerSource(name, list, fetch, estimate, options, dumpWalk(version));
    } catch (err) {
      list.close();
      fetch.close();
      if (err instanceof CopyError) throw err;
      throw new CopyError(`source ${name}: ${errorDetail(err)}`, { cause: err });
    }
  }

  /** Closes both connections. */
  close(): void {
    this.#list.close();
    this.#fetch.close();
  }

  async *batches(): AsyncGenerator<CopyItem[]> {
    const { match, signal } = this.#options;
    const limit = this.#options.limit ?? Infinity;
    const size = this.#options.batchSize ?? 1000;
    const window: FetchBatch[] = [];
    const onBatch = this.#options.onBatch;
    const batch = () => {
      onBatch?.();
      return new FetchBatch(this, this.counts);
    };
    let current = batch();
    const next = () => {
      current.seal();
      window.push(current);
      current = batch();
    };
    try {
      if (limit > 0) {
        for await (const e of this.#listing()) {
          if (signal?.aborted) break;
          const key = e.key;
          if (match !== undefined && !match(key)) continue;
          this.counts.listed++;
          current.fetch(this.#fetch, key);
          current.bytes += e.size > 0 ? e.size : key.length; // size: the item in memory
          const last = this.counts.listed >= limit;
          if (current.keys.length >= size || current.bytes >= BATCH_BYTES || last) next();
          // Two batches in flight: the server works on one while we take the other.
          if (window.length >= 2 || (last && window.length > 0)) {
            yield await window.shift()!.items();
          }
          if (last) break;
        }
      }
      if (current.keys.length > 0) next();
      while (window.length > 0) yield await window.shift()!.items();
    } catch (err) {
      if (err instanceof CopyError) throw err;
      throw new CopyError(`source ${this.name}: ${errorDetail(err)}`, { cause: err });
    }
  }

  /** A refused `mg` (its reply line): counted, per distinct line (the first 20). */
  refused(line: string): void {
    this.counts.failed++;
    const key = this.#refused.has(line) || this.#refused.size < 20 ? line : "other replies";
    this.#refused.set(key, (this.#refused.get(key) ?? 0) + 1);
  }

  errors(): string[] {
    return [...this.#refused].map(([line, n]) =>
      `source ${this.name} refused ${n} item${n === 1 ? "" : "s"}: ${line}`
    );
  }

  async *#listing() {
    // See dumpWalk; a server refusing "hash" gets "all". BUSY: another dump is running.
    let what: string = this.#walk.what;
    const pause = this.#walk.pause;
    for (let attempt = 0;; attempt++) {
      let started = false;
      try {
        for await (const e of this.#list.metadump(what, { pause: what === "all" || pause })) {
          started = true;
          yield e;
        }
        return;
      } catch (err) {
        const line = (err as { reply?: Reply }).reply?.line;
        if (line === undefined || started) throw err;
        if (line.startsWith("BUSY") && attempt < 50) {
          await new Promise((r) => setTimeout(r, 100));
          continue;
        }
        if (what === "hash") {
          what = "all";
          continue;
        }
        throw new CopyError(
          `source ${this.name} cannot list its keys with 'lru_crawler metadump all' ` +
            `(memcached >= 1.5 with the LRU crawler enabled is needed): ${line}`,
        );
      }
    }
  }
}

/** Items of a dump file, skipping those whose expiry has passed. */
export class FileSource implements Source {
  readonly name: string;
  readonly counts: SourceCounts = { listed: 0, missing: 0, expired: 0, failed: 0 };
  readonly estimate: number | undefined = undefined;
  readonly #reader: DumpReader;
  readonly #close: () => void;
  readonly #options: SourceOptions;
  #size: number | undefined;

  /** Reads a dump from `source`; `close` releases it. */
  constructor(name: string, source: ByteSource, close: () => void, options: SourceOptions = {}) {
    this.name = name;
    this.#reader = new DumpReader(source);
    this.#close = close;
    this.#options = options;
  }

  /** Opens a dump file (or `-` for stdin) and checks its header. */
  static async open(path: string, options: SourceOptions = {}): Promise<FileSource> {
    if (path === "-") {
      const src = new FileSource("stdin", Deno.stdin, () => {}, options);
      await src.#reader.readHeader();
      return src;
    }
    let file: Deno.FsFile;
    try {
      file = await Deno.open(path, { read: true });
    } catch (err) {
      throw new CopyError(`cannot open dump ${path}: ${errorText(err)}`, { cause: err });
    }
    const src = new FileSource(path, file, () => {
      try {
        file.close();
      } catch { /* closed */ }
    }, options);
    try {
      const st = await file.stat();
      if (st.isFile && st.size > 0) src.#size = st.size;
      await src.#reader.readHeader();
    } catch (err) {
      src.close();
      throw new CopyError(`dump ${path}: ${errorText(err)}`, { cause: err });
    }
    return src;
  }

  /** Header metadata. */
  get meta(): { created: number; source: string } | undefined {
    return this.#reader.meta;
  }

  /** Bytes of the file read so far. */
  get offset(): number {
    return this.#reader.offset;
  }

  /** Share of the file read so far, for a regular file. */
  fraction(): number | undefined {
    return this.#size === undefined ? undefined : this.#reader.offset / this.#size;
  }

  close(): void {
    this.#close();
  }

  errors(): string[] {
    return [];
  }

  async *batches(): AsyncGenerator<CopyItem[]> {
    const { match, signal } = this.#options;
    const limit = this.#options.limit ?? Infinity;
    const size = this.#options.batchSize ?? 1000;
    let batch: CopyItem[] = [];
    let bytes = 0;
    const now = nowSeconds();
    while (!signal?.aborted && this.counts.listed < limit) {
      let item;
      try {
        item = await this.#reader.next();
      } catch (err) {
        if (batch.length > 0) yield batch;
        throw new CopyError(`dump ${this.name}: ${errorText(err)}`, { cause: err });
      }
      if (item === undefined) break;
      if (match !== undefined && !match(item.key)) continue;
      this.counts.listed++;
      if (item.exp !== 0 && item.exp <= now) {
        this.counts.expired++;
        continue;
      }
      // The reader reuses its buffer: keep copies.
      batch.push({
        key: carveCopy(item.key, 0, item.key.length),
        value: carveCopy(item.value, 0, item.value.length),
        flags: item.flags,
        exp: item.exp,
      });
      bytes += item.key.length + item.value.length;
      if (batch.length >= size || bytes >= BATCH_BYTES) {
        yield batch;
        batch = [];
        bytes = 0;
      }
    }
    if (batch.length > 0) yield batch;
  }
}

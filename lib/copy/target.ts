/**
 * Where `replicate` writes items: live servers (pipelined `ms`, or
 * `set`/`add` for servers without meta commands) and dump files.
 * @module
 */

import {
  Client,
  type ClientOptions,
  errorDetail,
  type FrameHandler,
  ReplyKind,
} from "../client/mod.ts";
import {
  ascii,
  base64Key,
  base64Length,
  decodeAscii,
  isTextKey,
  MAX_KEY_LENGTH,
  Op,
  writeUint,
} from "../protocol/mod.ts";
import { errorText } from "../transport/mod.ts";
import { type ByteSink, DumpWriter } from "./dump_format.ts";
import { CopyError, type CopyItem, nowSeconds, parseVersion } from "./source.ts";

/** What happened to one item at one target. */
export const Outcome = {
  /** Written. */
  STORED: 0,
  /** Not written because the key exists (`--mode add`). */
  EXISTS: 1,
  /** The target refused it (out of memory, too large, ...). */
  FAILED: 2,
  /** Its TTL ran out before it could be written. */
  EXPIRED: 3,
} as const;

/** How items are written: `set` overwrites, `add` only fills missing keys. */
export type CopyMode = "set" | "add";

/** A destination of items. */
export interface Target {
  /** `host:port` or the dump path, for messages. */
  readonly name: string;
  /** Stores a batch; resolves with one {@linkcode Outcome} per item. */
  store(items: readonly CopyItem[]): Promise<Uint8Array>;
  /** Messages about refused items, each naming the target and a count. */
  errors(): string[];
  /**
   * Called once after the last batch: `complete` writes what ends the
   * destination (a dump's end record); otherwise (a failed run) only what is
   * buffered goes out, so a reader sees where it was cut.
   */
  finish(complete: boolean): Promise<void>;
  /** Releases the connection / file. */
  close(): void;
}

/** memcached reads relative TTLs above 30 days as absolute unix times. */
const MAX_RELATIVE_TTL = 2592000;
const CRLF = ascii("\r\n");

/** Items written to a live server, pipelined. */
export class ServerTarget implements Target {
  readonly name: string;
  readonly #client: Client;
  readonly #mode: CopyMode;
  readonly #meta: boolean;
  readonly #refused = new Map<string, number>();
  readonly #owns: boolean;
  #head = new Uint8Array(512);

  private constructor(name: string, client: Client, mode: CopyMode, meta: boolean, owns = true) {
    this.name = name;
    this.#client = client;
    this.#mode = mode;
    this.#meta = meta;
    this.#owns = owns;
  }

  /**
   * A target over a connection someone else owns (the proxy's pooled one, so
   * its writes stay in order with the proxy's own); `close` leaves it open.
   * Items are written with meta `ms`.
   */
  static over(name: string, client: Client, mode: CopyMode): ServerTarget {
    return new ServerTarget(name, client, mode, true, false);
  }

  /** Connects and picks meta `ms` (memcached >= 1.6, memrep) or text `set`/`add`. */
  static async open(
    host: string,
    port: number,
    mode: CopyMode,
    clientOptions: ClientOptions = {},
  ): Promise<ServerTarget> {
    const name = `${host}:${port}`;
    let client: Client;
    try {
      client = await Client.connect(host, port, clientOptions);
    } catch (err) {
      throw new CopyError(`cannot connect to target ${name}: ${errorDetail(err)}`, {
        cause: err,
      });
    }
    try {
      const v = parseVersion(await client.version());
      const meta = v === undefined || v[0] > 1 || (v[0] === 1 && v[1] >= 6);
      return new ServerTarget(name, client, mode, meta);
    } catch (err) {
      client.close();
      throw new CopyError(`target ${name}: ${errorDetail(err)}`, { cause: err });
    }
  }

  async store(items: readonly CopyItem[]): Promise<Uint8Array> {
    const out = new Uint8Array(items.length);
    const now = nowSeconds();
    // Replies are read in place (no Reply object each), in request order.
    const order: number[] = [];
    let received = 0, sealed = false;
    const { promise, resolve, reject } = Promise.withResolvers<void>();
    const onFrame: FrameHandler = (buf, start, length, parser) => {
      const i = order[received++];
      const k = parser.kind;
      if (k === ReplyKind.HD || k === ReplyKind.STORED) out[i] = Outcome.STORED;
      else if ((k === ReplyKind.NS || k === ReplyKind.NOT_STORED) && this.#mode === "add") {
        out[i] = Outcome.EXISTS;
      } else {
        out[i] = Outcome.FAILED;
        let e = buf.indexOf(13, start);
        if (e < 0 || e > start + length) e = start + length;
        this.#refuse(decodeAscii(buf, start, Math.min(e, start + 200)));
      }
      if (sealed && received === order.length) resolve();
    };
    const op = this.#meta ? Op.MS : Op.SET;
    for (let i = 0; i < items.length; i++) {
      const it = items[i];
      let ttl = 0;
      if (it.exp !== 0) {
        const left = it.exp - now;
        if (left <= 0) {
          out[i] = Outcome.EXPIRED;
          continue;
        }
        ttl = left > MAX_RELATIVE_TTL ? it.exp : left;
      }
      // A key no command can carry is never sent: memcached refuses it before reading
      // the value, which it would then run as commands.
      if (!isTextKey(it.key) && base64Length(it.key.length) > MAX_KEY_LENGTH) {
        out[i] = Outcome.FAILED;
        this.#refuse(`key longer than ${MAX_KEY_LENGTH} bytes (186 bytes for a binary key)`);
        continue;
      }
      const head = this.#meta ? this.#msHead(it, ttl) : this.#textHead(it, ttl);
      if (head === undefined) {
        out[i] = Outcome.FAILED;
        this.#refuse("binary key needs a server with meta commands (memcached >= 1.6)");
        continue;
      }
      order.push(i);
      this.#client.requestFrame(op, [head, it.value, CRLF], onFrame, reject);
    }
    sealed = true;
    if (received === order.length) resolve();
    try {
      await promise;
    } catch (err) {
      throw new CopyError(`lost target ${this.name}: ${errorDetail(err)}`, {
        cause: err,
      });
    }
    return out;
  }

  #refuse(message: string): void {
    this.#refused.set(message, (this.#refused.get(message) ?? 0) + 1);
  }

  errors(): string[] {
    return [...this.#refused].map(([message, n]) =>
      `target ${this.name} refused ${n} item${n === 1 ? "" : "s"}: ${message}`
    );
  }

  /** `ms <key> <len> F<flags> T<ttl>[ ME][ b]\r\n`, in the reused head buffer. */
  #msHead(it: CopyItem, ttl: number): Uint8Array {
    const text = isTextKey(it.key);
    const key = text ? it.key : base64Key(it.key);
    const b = this.#headBuffer(key.length + 64);
    b[0] = 0x6d; // m
    b[1] = 0x73; // s
    b[2] = 0x20;
    b.set(key, 3);
    let o = 3 + key.length;
    b[o++] = 0x20;
    o = writeUint(b, o, it.value.length);
    b[o++] = 0x20;
    b[o++] = 0x46; // F
    o = writeUint(b, o, it.flags);
    b[o++] = 0x20;
    b[o++] = 0x54; // T
    o = writeUint(b, o, ttl);
    if (this.#mode === "add") {
      b[o++] = 0x20;
      b[o++] = 0x4d; // M
      b[o++] = 0x45; // E: add
    }
    if (!text) {
      b[o++] = 0x20;
      b[o++] = 0x62; // b
    }
    b[o++] = 0x0d;
    b[o++] = 0x0a;
    return b.subarray(0, o);
  }

  /** `set|add <key> <flags> <exptime> <len>\r\n`; undefined for keys text cannot carry. */
  #textHead(it: CopyItem, ttl: number): Uint8Array | undefined {
    if (!isTextKey(it.key)) return undefined;
    const word = this.#mode === "add" ? "add " : "set ";
    const b = this.#headBuffer(it.key.length + 64);
    for (let i = 0; i < 4; i++) b[i] = word.charCodeAt(i);
    b.set(it.key, 4);
    let o = 4 + it.key.length;
    b[o++] = 0x20;
    o = writeUint(b, o, it.flags);
    b[o++] = 0x20;
    o = writeUint(b, o, ttl);
    b[o++] = 0x20;
    o = writeUint(b, o, it.value.length);
    b[o++] = 0x0d;
    b[o++] = 0x0a;
    return b.subarray(0, o);
  }

  /** The client copies request parts at once, so one head buffer serves every item. */
  #headBuffer(size: number): Uint8Array {
    if (this.#head.length < size) this.#head = new Uint8Array(size);
    return this.#head;
  }

  finish(_complete: boolean): Promise<void> {
    return Promise.resolve();
  }

  close(): void {
    if (this.#owns) this.#client.close();
  }
}

/**
 * Items written to a dump file (see dump_format.ts). A file dump is written
 * as `<path>.partial` and renamed over `path` only once complete, so a copy
 * that fails leaves an existing dump as it was (and what it got in the
 * `.partial` file, readable up to where it stopped).
 */
export class DumpTarget implements Target {
  readonly name: string;
  readonly #writer: DumpWriter;
  readonly #close: (complete: boolean) => Promise<void>;
  #closed = false;

  private constructor(
    name: string,
    sink: ByteSink,
    close: (complete: boolean) => Promise<void>,
  ) {
    this.name = name;
    this.#writer = new DumpWriter(sink);
    this.#close = close;
  }

  /** Creates `path`'s partial file (`-`: stdout) and writes the header. */
  static async open(path: string, source: string): Promise<DumpTarget> {
    let target: DumpTarget;
    if (path === "-") target = new DumpTarget("stdout", Deno.stdout, () => Promise.resolve());
    else {
      const partial = `${path}.partial`;
      let file: Deno.FsFile;
      try {
        file = await Deno.open(partial, { write: true, create: true, truncate: true });
      } catch (err) {
        throw new CopyError(
          `cannot create dump ${path}: ${errorText(err)}`,
          { cause: err },
        );
      }
      target = new DumpTarget(path, file, async (complete) => {
        try {
          file.close();
        } catch { /* closed */ }
        if (!complete) return;
        try {
          await Deno.rename(partial, path);
        } catch (err) {
          throw new CopyError(`cannot write dump ${path}: ${errorText(err)}`, { cause: err });
        }
      });
    }
    await target.#writer.writeHeader({ created: nowSeconds(), source });
    return target;
  }

  async store(items: readonly CopyItem[]): Promise<Uint8Array> {
    const out = new Uint8Array(items.length);
    const now = nowSeconds();
    for (let i = 0; i < items.length; i++) {
      const it = items[i];
      if (it.exp !== 0 && it.exp <= now) {
        out[i] = Outcome.EXPIRED;
        continue;
      }
      try {
        await this.#writer.add(it.key, it.value, it.flags, it.exp);
      } catch (err) {
        throw new CopyError(`cannot write dump ${this.name}: ${errorText(err)}`, { cause: err });
      }
    }
    return out;
  }

  errors(): string[] {
    return [];
  }

  /**
   * Writes the end record and puts the file in place, or after a failure
   * only what is buffered (the partial file stays beside the old dump).
   */
  async finish(complete: boolean): Promise<void> {
    if (complete) await this.#writer.end();
    else await this.#writer.flush();
    this.#closed = true;
    await this.#close(complete);
  }

  /** Closes the file (finish did, when it ran). */
  close(): void {
    if (!this.#closed) this.#close(false).catch(() => {});
    this.#closed = true;
  }
}

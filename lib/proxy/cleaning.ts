/**
 * Cleaning one backend of the keys that may be stale on it (its
 * {@linkcode DirtyKeys}): each is deleted there and its item put back from
 * the key's other holders (the router's restoreFrom), or the server is
 * flushed when every key is dirty. pool.ts runs the passes on a returning
 * server before it serves, and a {@linkcode Cleaner} in the background,
 * on the pooled connection, when keys turn dirty while it is up.
 * @module
 */

import { type Client, errorDetail } from "../client/mod.ts";
import { base64Encode, base64Length, isErrorKind, Op } from "../protocol/mod.ts";
import { log } from "../log.ts";
import type { DirtyEntry, DirtyKeys, KeyCounts } from "./dirty.ts";

/** Keys deleted per cleaning pass while up (bounded pipeline). */
const PASS_KEYS = 8192;
/**
 * What a cleaning does once its delete of a key is answered: sends the
 * item's put-back on `client` (or finds nothing to put back) and returns
 * true, or returns false when that cannot be decided now, the key to be
 * cleaned again later (see Backend.restore in pool.ts); a promise of that
 * while it reads again (the key restoring meanwhile). Never rejects.
 */
export type PutBack = (client: Client) => boolean | Promise<boolean>;

/** At least this long before an undecided put-back's key is cleaned again. */
const PUT_BACK_RETRY_MS = 500;

/** Keys deleted (and their items put back, see Backend.restore) at once. */
const CLEAN_BATCH = 500;

/** What a cleaning needs of its server (pool.ts's Backend). */
export interface CleanedServer {
  /** `host:port`, or a unix socket's path. */
  readonly name: string;
  /** "server" or "backup". */
  readonly role: string;
  /** False while marked down. */
  readonly up: boolean;
  /** True once closed. */
  readonly closed: boolean;
  /** Reads the item a cleaning puts back (see Backend.restore). */
  readonly restore: ((key: Uint8Array) => Promise<PutBack>) | undefined;
  /** The pooled connection, a promise of it, or null when down. */
  acquire(): Client | Promise<Client> | null;
  /** `key` is dirty again. */
  markDirty(key: Uint8Array): void;
}

/** The cleaning of one server's dirty keys, and its background runs while the server is up. */
export class Cleaner {
  /**
   * Dirty keys re-sent (as deletes) by cleaning passes: the retries of
   * writes and deletes that could not reach this server.
   */
  retries = 0;
  readonly #server: CleanedServer;
  readonly #dirty: DirtyKeys;
  readonly #restoring: KeyCounts;
  readonly #fenced: (seq: number) => boolean;
  readonly #options: { readonly retryMs: number };
  readonly #cleaned: () => void;
  /** A background cleaning (while up) is running. */
  #cleaning = false;
  #cleanTimer: ReturnType<typeof setTimeout> | undefined;

  /**
   * The cleaner of `server`'s `dirty` keys; `restoring` gets the keys whose
   * item is not put back yet, `fenced` tells whether a connection up to a
   * number may still deliver bytes (see DirtyKeys.settle), and `cleaned`
   * runs after a background cleaning while up.
   */
  constructor(
    server: CleanedServer,
    dirty: DirtyKeys,
    restoring: KeyCounts,
    fenced: (seq: number) => boolean,
    options: { readonly retryMs: number },
    cleaned: () => void,
  ) {
    this.#server = server;
    this.#dirty = dirty;
    this.#restoring = restoring;
    this.#fenced = fenced;
    this.#options = options;
    this.#cleaned = cleaned;
  }

  /**
   * One cleaning pass: flush the server if every key is dirty, else delete
   * up to `max` dirty keys. A key is forgotten only if its delete succeeded
   * and nothing marked it again meanwhile; throws when the server fails.
   */
  async pass(client: Client, max: number): Promise<void> {
    const dirty = this.#dirty, s = this.#server;
    if (dirty.all) {
      log.info(`proxy: ${s.role} ${s.name}: flushing (changes missed)`);
      dirty.flushing();
      try {
        await client.flushAll();
      } catch (err) {
        dirty.flushFailed();
        throw err;
      }
      return;
    }
    const entries = dirty.snapshot(max);
    if (entries.length === 0) return;
    this.retries += entries.length;
    // On return (every key at once) worth telling; the small passes while up are not.
    const say = `proxy: ${s.role} ${s.name}: invalidating ${entries.length} keys changed elsewhere`;
    if (max === Infinity) log.info(say);
    else log.debug(say);
    // In batches: the items put back are held in memory until sent.
    for (let i = 0; i < entries.length; i += CLEAN_BATCH) {
      await this.#cleanBatch(client, dirty, entries.slice(i, i + CLEAN_BATCH));
    }
  }

  /**
   * Delete `entries` on the server and put each key's item back from its
   * copies (see {@linkcode CleanedServer.restore}). Each key is settled on
   * the read path, as its delete is answered, before any later reply's
   * callback can mark it (see DirtyKeys: marks seen before the answer are
   * of requests sent before the delete).
   */
  async #cleanBatch(client: Client, dirty: DirtyKeys, entries: DirtyEntry[]): Promise<void> {
    // Sent at the end of this tick, so no earlier than now.
    const sentAt = Date.now();
    let left = entries.length, failed: Error | undefined;
    const { promise, resolve } = Promise.withResolvers<void>();
    const done = () => {
      if (--left === 0) resolve();
    };
    for (const e of entries) {
      const key = keyBytes(e.key);
      if (e.keep) {
        // Nothing changed elsewhere: a no-op read (`mg <key> b`) stands for the delete.
        client.requestFrame(Op.MG, [metaLine(MG_WORD, key)], (_buf, _start, _length, parser) => {
          if (!isErrorKind(parser.kind)) dirty.settle(e, sentAt, Date.now(), this.#fenced);
          done();
        }, (err) => {
          failed ??= err;
          done();
        });
        continue;
      }
      // Read at once: the key is not kept dirty longer than its delete takes.
      let putBack: PutBack | undefined;
      let deleted = false;
      this.#server.restore?.(key).then((send) => {
        putBack = send;
        if (!deleted) return;
        this.#afterPutBack(e.key, key, send(client)); // the copy answered after the delete: sent now
        this.#restoring.remove(e.key);
      });
      client.requestFrame(Op.MD, [metaLine(MD_WORD, key)], (_buf, _start, _length, parser) => {
        if (!isErrorKind(parser.kind)) {
          deleted = true;
          // Settled first: a key still dirty gets its put-back from the next delete's (marked).
          dirty.settle(e, sentAt, Date.now(), this.#fenced);
          if (putBack !== undefined) this.#afterPutBack(e.key, key, putBack(client));
          else if (this.#server.restore !== undefined) this.#restoring.add(e.key);
        }
        done();
      }, (err) => {
        failed ??= err;
        done();
      });
    }
    await promise; // entries is never empty
    if (failed !== undefined) throw failed;
  }

  /** Keep `key` restoring until the put-back `done` is decided, and after (see #putBackLater). */
  #afterPutBack(key: string, raw: Uint8Array, done: boolean | Promise<boolean>): void {
    if (done === true) return;
    if (done === false) return this.#putBackLater(key, raw);
    this.#restoring.add(key);
    done.then((sent) => {
      if (!sent) this.#putBackLater(key, raw);
      this.#restoring.remove(key);
    });
  }

  /**
   * The put-back of `key` could not be decided (router's restoreFrom): the
   * key stays restoring (see Backend.isDirty), then is cleaned again.
   */
  #putBackLater(key: string, raw: Uint8Array): void {
    this.#restoring.add(key);
    setTimeout(() => {
      // Dirty from now on, so no gap: the dirty key is routed as the restoring one was.
      if (!this.#server.closed) this.#server.markDirty(raw);
      this.#restoring.remove(key);
    }, Math.max(this.#options.retryMs, PUT_BACK_RETRY_MS));
  }

  /** Clean dirty keys while up, on the pooled connection (in order with the router's requests). */
  soon(): void {
    const s = this.#server;
    if (this.#cleaning || this.#cleanTimer !== undefined || s.closed) return;
    this.#cleaning = true;
    (async () => {
      let cleaned = false;
      try {
        while (s.up && !this.#dirty.clean) {
          const c = s.acquire();
          if (c === null) break;
          cleaned = true;
          const before = this.#dirty.size;
          await this.pass(await c, PASS_KEYS);
          // Only held keys left (see Backend.lost): delete them again a little later.
          if (this.#dirty.size === before) await delay(Math.min(this.#options.retryMs, 200));
        }
      } catch (err) {
        log.debug(`proxy: ${s.role} ${s.name}: cleaning failed: ${errorDetail(err)}`);
        // Try again later unless the server is marked down (then its return cleans).
        if (s.up && !s.closed) {
          this.#cleanTimer = setTimeout(() => {
            this.#cleanTimer = undefined;
            this.soon();
          }, this.#options.retryMs);
        }
      } finally {
        this.#cleaning = false;
      }
      if (cleaned && s.up) this.#cleaned();
    })();
  }

  /** No background cleaning from now on (the server is closed). */
  stop(): void {
    if (this.#cleanTimer !== undefined) clearTimeout(this.#cleanTimer);
  }
}

function delay(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** A dirty key's bytes (DirtyKeys keeps one character per byte). */
function keyBytes(key: string): Uint8Array {
  const raw = new Uint8Array(key.length);
  for (let i = 0; i < key.length; i++) raw[i] = key.charCodeAt(i);
  return raw;
}

/** `md `: {@linkcode metaLine}'s delete. */
const MD_WORD = [109, 100, 32];
/** `mg `: {@linkcode metaLine}'s read (no flags: HD or EN, nothing fetched). */
const MG_WORD = [109, 103, 32];

/** `<word><base64 key> b`: a meta request that is safe for any key bytes. */
function metaLine(word: readonly number[], raw: Uint8Array): Uint8Array {
  const out = new Uint8Array(base64Length(raw.length) + 8);
  out.set(word);
  let p = base64Encode(raw, 0, raw.length, out, 3);
  for (const c of [32, 98, 13, 10]) out[p++] = c; // " b\r\n"
  return out.subarray(0, p);
}

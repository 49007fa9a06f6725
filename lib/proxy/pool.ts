/**
 * One backend memcached as the proxy sees it: one pipelined connection from
 * lib/client, health (failures, down, periodic retry), and the keys written
 * elsewhere while it could not be written ({@linkcode DirtyKeys}), cleaned
 * before it serves again, or in the background when they appear while it is
 * up (the router does not read a dirty key from it meanwhile). The cleaning
 * itself (deletes, items put back) is cleaning.ts's {@linkcode Cleaner}.
 *
 * A returning server is taken back only once a cleaning pass ends with
 * nothing dirty (checked and flipped in one step, so no write that failed
 * over during the passes is forgotten); after a few passes that keep
 * finding new keys it is taken back anyway and the rest is cleaned while up.
 * @module
 */

import { Client, ClientError, errorDetail, serverName } from "../client/mod.ts";
import { decodeAscii } from "../protocol/mod.ts";
import { log } from "../log.ts";
import { Cleaner, type PutBack } from "./cleaning.ts";
import { DirtyKeys, KeyCounts } from "./dirty.ts";

/** Health and connection settings shared by every backend. */
export interface BackendOptions {
  /** Connect and request timeout (ms). */
  timeoutMs: number;
  /** While down, try the server again this often (ms). */
  retryMs: number;
  /** Consecutive connection failures that mark the server down. */
  failureLimit: number;
  /** Credentials for backends that require a text login (memcached -Y). */
  login?: { user: string; password: string };
  /** TLS to the backends (--backend-tls, --backend-tls-ca). */
  tls?: { ca?: string };
}

/**
 * How long a connection given up on (a request timed out) is drained: its
 * lost keys stay dirty until the server has closed it, at most this long.
 */
const DRAIN_MS = 60_000;
/** Keys remembered per down server; beyond this the server is flushed on return. */
const MAX_DIRTY_KEYS = 65536;
/** Cleaning passes before a returning server is taken back with keys still dirty. */
const RETURN_PASSES = 8;

/** Why {@linkcode Backend.onReturn} runs. */
export interface ReturnInfo {
  /** The server answers as another process (pid or start time changed): it lost everything. */
  restarted: boolean;
  /** Keys were deleted or the server flushed because they changed elsewhere. */
  cleaned: boolean;
}

/**
 * A backend memcached: a primary (`-s`) or a backup (`-b`). Another zone's
 * server is a backup of the keys its zone's ring gives it (lib/proxy/zones.ts).
 */
export class Backend {
  /** `host:port`, or a unix socket's path. */
  readonly name: string;
  /** Host to connect to (an absolute path: a unix-domain socket). */
  readonly host: string;
  /** Port to connect to. */
  readonly port: number;
  /** "server" for -s, "backup" for -b. */
  readonly role: "server" | "backup";
  /** 1-based position among its role, as magent's `stats` numbers them. */
  readonly number: number;
  /** The zone it is in (`zone:` item, `-s host:port@zone`), if given. */
  zone: string | undefined = undefined;
  /**
   * Notice restarts (another pid or start time on a new connection) and
   * report them through {@linkcode onReturn}: every backup, and with zones
   * the local zone's servers too (then refilled from another zone).
   */
  watchRestarts: boolean;
  /** False while marked down: no requests are sent until a retry succeeds. */
  up = true;
  /** Requests sent. */
  requests = 0;
  /** Connection failures (refused, reset, timed out, bad replies). */
  errors = 0;
  /** Times marked down. */
  ejections = 0;
  /** Refill from the primaries (backups): none, running, done, partial, interrupted. */
  refill = "none";
  /** Items copied by the current or last refill. */
  refillItems = 0;
  /** Refills started. */
  refillRuns = 0;
  /**
   * Called when the server serves again after being down, when it was
   * cleaned while up, or when a new connection finds another process
   * ({@linkcode watchRestarts} only). The router refills copies from here.
   */
  onReturn: ((b: Backend, info: ReturnInfo) => void) | undefined;
  /**
   * A cleaning puts the key's item back from the key's other holders (the
   * router's restoreFrom): called as the delete of `key` is sent, it
   * resolves with the {@linkcode PutBack} to call once the delete was
   * answered, just before the key is forgotten. Never rejects.
   */
  restore: ((key: Uint8Array) => Promise<PutBack>) | undefined;
  #options: BackendOptions;
  // One pipelined connection: requests from every client batch into one
  // write, and requests for a key keep their order (more connections
  // measured slower and would let a read overtake a write).
  #client: Client | undefined;
  #connecting: Promise<Client> | undefined;
  #failures = 0;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #closed = false;
  /** Keys written to a stand-in while this server could not be written. */
  readonly #dirty = new DirtyKeys(MAX_DIRTY_KEYS);
  /** Keys a cleaning deleted whose item is not put back yet, with how many such deletes. */
  readonly #restoring = new KeyCounts();
  /** Deletes the dirty keys here (and puts their items back): on return, and while up. */
  readonly #cleaner: Cleaner;
  #reconnectTimer: ReturnType<typeof setTimeout> | undefined;
  /** Connections adopted so far; each one's number. */
  #seq = 0;
  /** Closed connections still being drained, with their numbers. */
  readonly #draining = new Map<Client, number>();
  /** `pid start-time` of the process last seen on the port (backups). */
  #identity: { pid: string; start: number } | undefined;

  /** A backend; nothing connects until the first request. */
  constructor(
    host: string,
    port: number,
    role: "server" | "backup",
    number: number,
    options: BackendOptions,
  ) {
    this.host = host;
    this.port = port;
    this.name = serverName(host, port);
    this.role = role;
    this.number = number;
    this.watchRestarts = role === "backup";
    this.#options = options;
    this.#cleaner = new Cleaner(
      this,
      this.#dirty,
      this.#restoring,
      this.#fenced,
      options,
      () => this.onReturn?.(this, { restarted: false, cleaned: true }),
    );
  }

  /** True once {@linkcode close} was called. */
  get closed(): boolean {
    return this.#closed;
  }

  /** Open connections (magent's "pool size"). */
  get poolSize(): number {
    return this.#client !== undefined && !this.#client.closed ? 1 : 0;
  }

  /** Requests sent on the connection and not answered yet (for a backup: its copy queue). */
  get queued(): number {
    const c = this.#client;
    return c !== undefined && !c.closed ? c.pending : 0;
  }

  /** Keys waiting to be invalidated on this server (-1: it will be flushed). */
  get dirtyKeys(): number {
    return this.#dirty.size;
  }

  /**
   * Dirty keys re-sent (as deletes) by cleaning passes: the retries of
   * writes and deletes that could not reach this server.
   */
  get retries(): number {
    return this.#cleaner.retries;
  }

  /** Times the dirty set overflowed: the server is flushed (and, a backup, refilled) before it serves those keys again. */
  get overflows(): number {
    return this.#dirty.overflows;
  }

  /**
   * True while a cleaning delete of `key` is still to come here: an earlier
   * cleaning's put-back could land after it, and the later one (an add)
   * would find its item there.
   */
  marked(key: Uint8Array): boolean {
    return !this.#dirty.clean && this.#dirty.has(key);
  }

  /** False when {@linkcode isDirty} says false for every key (a fast check first). */
  get anyDirty(): boolean {
    return !this.#dirty.clean || this.#restoring.size > 0;
  }

  /**
   * True when `key` may be stale here: changed elsewhere and not cleaned
   * yet, or cleaned and its item (read from another copy) not put back yet.
   * Such a key is read, written and deleted on the copies: the server lacks
   * it meanwhile, so it must not stand in for another copy either (a write
   * failed over there, or an add checked there, would be decided by that
   * absence), and a delete sent here would reach the copies only after a
   * write sent to them directly.
   */
  isDirty(key: Uint8Array): boolean {
    return this.marked(key) ||
      (this.#restoring.size > 0 && this.#restoring.has(decodeAscii(key, 0, key.length)));
  }

  /**
   * A connection to send on: a connected client, a promise of one (a
   * connect is under way), or null when the server is down.
   */
  acquire(): Client | Promise<Client> | null {
    if (!this.up) return null;
    // While requests wait on a connect, later ones queue behind them even once the
    // connection is adopted: they send from the promise's reactions, which run after
    // code already queued (another client's read), and that code must not overtake them.
    if (this.#connecting !== undefined) return this.#connecting;
    const c = this.#client;
    if (c !== undefined && !c.closed) return c;
    const p = this.#connect();
    this.#connecting = p;
    // Registered first, so it runs first among the reactions, which run back to back:
    // every waiter sends before anything that calls acquire() afterwards.
    const done = () => {
      if (this.#connecting === p) this.#connecting = undefined;
    };
    p.then(done, done);
    return p;
  }

  /** Send what this server's connection has buffered now, not at the end of the tick. */
  flush(): void {
    const c = this.#client;
    if (c !== undefined && !c.closed) c.flush();
  }

  /**
   * Remember that `key` changed elsewhere while this server could not be
   * written; while up it is deleted here in the background.
   */
  markDirty(key: Uint8Array): void {
    this.#dirty.mark(key);
    if (this.up) this.#cleaner.soon();
  }

  /**
   * A request for `key` was sent here and failed (timed out, connection
   * cut): the key is dirty, and it stays dirty for a grace period after
   * the first cleaning delete the server answers (until a delete sent after
   * it), since the lost bytes may still be applied late (after that delete,
   * on another connection). `keep`: no other server took the request either,
   * so the item here is not deleted, only the grace period waited out (see
   * DirtyKeys.mark).
   */
  lost(key: Uint8Array, keep = false): void {
    this.#dirty.mark(key, this.#lateMs, this.#seq, keep);
    if (this.up) this.#cleaner.soon();
  }

  /** A write for `key` went elsewhere because this server failed: it may hold an old value. */
  invalidate(key: Uint8Array): void {
    this.lost(key);
  }

  /** How long lost bytes may still land: twice the request timeout, at least 1 s. */
  get #lateMs(): number {
    return Math.max(2 * this.#options.timeoutMs, 1000);
  }

  /**
   * New settings (a reload): connections made from now on use its timeout;
   * the current one keeps its own (dropped, it would let requests on the next
   * one overtake those still on it).
   */
  configure(options: BackendOptions): void {
    this.#options = options;
  }

  /**
   * A reload made this backend in place of `old` (the same server in
   * another role or zone): every key `old` may hold stale (dirty, or its item not put
   * back yet) is dirty here too, as lost: `old`'s requests in flight may
   * still land. Forgotten, reads returned the server's older items.
   */
  inherit(old: Backend): void {
    if (old.#dirty.all) return this.markAllDirty();
    const bytes = (k: string) => Uint8Array.from(k, (c) => c.charCodeAt(0));
    for (const e of old.#dirty.snapshot()) this.lost(bytes(e.key), e.keep);
    for (const k of old.#restoring.keys()) this.lost(bytes(k));
  }

  /** A change to every key was missed (flush_all while down or failed). */
  markAllDirty(): void {
    this.#dirty.markAll();
    if (this.up) this.#cleaner.soon();
  }

  async #connect(): Promise<Client> {
    try {
      const client = await Client.connect(this.host, this.port, {
        connectTimeoutMs: this.#options.timeoutMs,
        requestTimeoutMs: this.#options.timeoutMs,
        login: this.#options.login,
        tls: this.#options.tls,
        drainMs: DRAIN_MS,
      });
      if (this.#closed || !this.up) {
        client.close();
        throw new ClientError("closed", this.name, "server marked down");
      }
      this.#adopt(client);
      if (this.watchRestarts) this.#checkIdentity(client, true);
      return client;
    } catch (err) {
      this.#failed(err);
      throw err;
    }
  }

  #adopt(client: Client): void {
    this.#client = client;
    const seq = ++this.#seq;
    client.onClose((err) => {
      if (this.#client === client) this.#client = undefined;
      this.#fence(client, seq);
      if (err !== undefined) this.#failed(err);
      // A backup that dropped its connection may have restarted empty: reconnect to find out
      // (the identity check) even if no write comes to ask for it.
      if (this.watchRestarts) this.#reconnectSoon();
    });
  }

  /**
   * A connection closed with requests given up on: until the server has
   * closed it too (the drain), what they carried may still be applied, so
   * keys lost up to it stay dirty (see {@linkcode #fenced}).
   */
  #fence(client: Client, seq: number): void {
    this.#draining.set(client, seq);
    client.drained.then((fenced) => {
      this.#draining.delete(client);
      if (!fenced) {
        log.info(
          `proxy: ${this.role} ${this.name}: a timed-out connection did not close in ${DRAIN_MS} ms`,
        );
      }
      if (this.up && this.anyDirty) this.#cleaner.soon();
    });
  }

  /** No connection up to number `seq` can still deliver bytes to the server. */
  readonly #fenced = (seq: number): boolean => {
    for (const s of this.#draining.values()) if (s <= seq) return false;
    return true;
  };

  #reconnectSoon(): void {
    if (this.#closed || !this.up || this.#reconnectTimer !== undefined) return;
    this.#reconnectTimer = setTimeout(() => {
      this.#reconnectTimer = undefined;
      const c = this.acquire();
      if (c instanceof Promise) c.catch(() => this.#reconnectSoon());
    }, Math.min(this.#options.retryMs, 500));
  }

  /** A reply arrived: the server works. */
  succeeded(): void {
    this.#failures = 0;
  }

  #failed(err: unknown): void {
    this.errors++;
    if (!this.up || this.#closed) return;
    this.#failures++;
    log.debug(`proxy: ${this.role} ${this.name}: ${errorDetail(err)}`);
    if (this.#failures >= this.#options.failureLimit) this.#markDown(errorDetail(err));
  }

  #markDown(why: string): void {
    this.up = false;
    this.ejections++;
    log.info(
      `proxy: ${this.role} ${this.name} is down (${why}); retrying every ${this.#options.retryMs} ms`,
    );
    // Outstanding requests fail now and fall back, instead of each waiting its timeout
    // (drained: their bytes may still reach the server).
    this.#client?.abandon(`${this.name} marked down`);
    this.#schedule();
  }

  #schedule(): void {
    if (this.#closed) return;
    this.#timer = setTimeout(() => this.#probe(), this.#options.retryMs);
  }

  /** While down: connect and ask `version`; only a real answer brings the server back. */
  async #probe(): Promise<void> {
    this.#timer = undefined;
    let client: Client | undefined;
    let restarted = false, cleaned = false;
    try {
      client = await Client.connect(this.host, this.port, {
        connectTimeoutMs: this.#options.timeoutMs,
        requestTimeoutMs: this.#options.timeoutMs,
        login: this.#options.login,
        tls: this.#options.tls,
        drainMs: DRAIN_MS,
      });
      await client.version();
      restarted = this.watchRestarts && await this.#checkIdentity(client, false);
      for (let pass = 0; pass < RETURN_PASSES && !this.#dirty.clean; pass++) {
        cleaned = true;
        await this.#cleaner.pass(client, Infinity);
      }
    } catch (err) {
      client?.close();
      log.debug(`proxy: ${this.role} ${this.name} still down: ${errorDetail(err)}`);
      this.#schedule();
      return;
    }
    if (this.#closed) {
      client.close();
      return;
    }
    // No await between the last pass and here: a write that failed over meanwhile is in the set.
    this.#failures = 0;
    this.up = true;
    this.#adopt(client);
    log.info(`proxy: ${this.role} ${this.name} is up`);
    if (!this.#dirty.clean) this.#cleaner.soon();
    this.onReturn?.(this, { restarted, cleaned });
  }

  /**
   * Ask `stats` who answers on the port; true when it is another process
   * than last time (pid or start time changed: a restart, so it is empty).
   * With `notify`, a change is reported through {@linkcode onReturn}.
   */
  async #checkIdentity(client: Client, notify: boolean): Promise<boolean> {
    let st: Map<string, string>;
    try {
      st = await client.stats();
    } catch {
      return false;
    }
    const pid = st.get("pid") ?? "";
    const start = Number(st.get("time")) - Number(st.get("uptime"));
    const before = this.#identity;
    this.#identity = { pid, start };
    // time and uptime tick apart: a start time that moved by a second or two is the same process.
    const changed = before !== undefined &&
      (before.pid !== pid || !(Math.abs(before.start - start) <= 2));
    if (changed && notify) this.onReturn?.(this, { restarted: true, cleaned: false });
    return changed;
  }

  /** Close every connection and stop retrying. */
  close(): void {
    this.#closed = true;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#cleaner.stop();
    if (this.#reconnectTimer !== undefined) clearTimeout(this.#reconnectTimer);
    this.#client?.close();
  }
}

/**
 * One backend memcached as the proxy sees it: one pipelined connection from
 * lib/client, health (failures, down, periodic retry), and the keys written
 * elsewhere while it was down, cleaned up before it serves again.
 * @module
 */

import { Client, ClientError, errorDetail } from "../client/mod.ts";
import { base64Encode, base64Length, decodeAscii, Op } from "../protocol/mod.ts";
import { log } from "../log.ts";

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
}

/** Keys remembered per down server; beyond this the server is flushed on return. */
const MAX_DIRTY_KEYS = 65536;

/** A backend memcached: a primary (`-s`) or a backup (`-b`). */
export class Backend {
  /** `host:port`. */
  readonly name: string;
  /** Host to connect to. */
  readonly host: string;
  /** Port to connect to. */
  readonly port: number;
  /** "server" for -s, "backup" for -b. */
  readonly role: "server" | "backup";
  /** 1-based position among its role, as magent's `stats` numbers them. */
  readonly number: number;
  /** False while marked down: no requests are sent until a retry succeeds. */
  up = true;
  /** Requests sent. */
  requests = 0;
  /** Connection failures (refused, reset, timed out, bad replies). */
  errors = 0;
  /** Times marked down. */
  ejections = 0;
  readonly #options: BackendOptions;
  // One pipelined connection: requests from every client batch into one
  // write, and requests for a key keep their order (more connections
  // measured slower and would let a read overtake a write).
  #client: Client | undefined;
  #connecting: Promise<Client> | undefined;
  #failures = 0;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #closed = false;
  /** Keys (decodeAscii) written to a stand-in while this server was down. */
  #dirty = new Set<string>();
  /** Too many dirty keys, or a flush_all missed: flush the server before it serves again. */
  #dirtyAll = false;

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
    this.name = `${host}:${port}`;
    this.role = role;
    this.number = number;
    this.#options = options;
  }

  /** Open connections (magent's "pool size"). */
  get poolSize(): number {
    return this.#client !== undefined && !this.#client.closed ? 1 : 0;
  }

  /** Keys waiting to be invalidated on this server when it comes back. */
  get dirtyKeys(): number {
    return this.#dirtyAll ? -1 : this.#dirty.size;
  }

  /**
   * A connection to send on: a connected client, a promise of one (a
   * connect is under way), or null when the server is down.
   */
  acquire(): Client | Promise<Client> | null {
    if (!this.up) return null;
    const c = this.#client;
    if (c !== undefined && !c.closed) return c;
    return this.#connecting ??= this.#connect();
  }

  /** Remember that `key` changed elsewhere while this server could not be written. */
  markDirty(key: Uint8Array): void {
    if (this.#dirtyAll) return;
    if (this.#dirty.size >= MAX_DIRTY_KEYS) {
      this.#dirtyAll = true;
      this.#dirty.clear();
      return;
    }
    this.#dirty.add(decodeAscii(key, 0, key.length));
  }

  /**
   * A write for `key` went elsewhere because this server failed: it may hold
   * an old value. Delete it now if the server is up, else (or if that
   * fails) when it comes back.
   */
  invalidate(key: Uint8Array): void {
    this.markDirty(key);
    const c = this.up ? this.acquire() : null;
    if (c === null) return;
    const name = decodeAscii(key, 0, key.length);
    const line = metaDelete(name);
    Promise.resolve(c).then((client) => client.request(line, Op.MD)).then((r) => {
      if (!r.isError && this.up) this.#dirty.delete(name);
    }, () => {});
  }

  /** A change to every key was missed (flush_all while down). */
  markAllDirty(): void {
    this.#dirtyAll = true;
    this.#dirty.clear();
  }

  async #connect(): Promise<Client> {
    try {
      const client = await Client.connect(this.host, this.port, {
        connectTimeoutMs: this.#options.timeoutMs,
        requestTimeoutMs: this.#options.timeoutMs,
        login: this.#options.login,
      });
      if (this.#closed || !this.up) {
        client.close();
        throw new ClientError("closed", this.name, "server marked down");
      }
      this.#adopt(client);
      return client;
    } catch (err) {
      this.#failed(err);
      throw err;
    } finally {
      this.#connecting = undefined;
    }
  }

  #adopt(client: Client): void {
    this.#client = client;
    client.onClose((err) => {
      if (this.#client === client) this.#client = undefined;
      if (err !== undefined) this.#failed(err);
    });
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
    // Outstanding requests fail now and fall back, instead of each waiting its timeout.
    this.#client?.close();
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
    try {
      client = await Client.connect(this.host, this.port, {
        connectTimeoutMs: this.#options.timeoutMs,
        requestTimeoutMs: this.#options.timeoutMs,
        login: this.#options.login,
      });
      await client.version();
      await this.#cleanDirty(client);
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
    this.#failures = 0;
    this.up = true;
    this.#adopt(client);
    log.info(`proxy: ${this.role} ${this.name} is up`);
  }

  /** Drop what this server may hold stale: keys changed elsewhere while it was down. */
  async #cleanDirty(client: Client): Promise<void> {
    if (this.#dirtyAll) {
      log.info(`proxy: ${this.role} ${this.name}: flushing (changes missed while down)`);
      await client.flushAll();
    } else if (this.#dirty.size > 0) {
      log.info(
        `proxy: ${this.role} ${this.name}: invalidating ${this.#dirty.size} keys changed while down`,
      );
      await Promise.all([...this.#dirty].map((k) => client.request(metaDelete(k), Op.MD)));
    }
    this.#dirty.clear();
    this.#dirtyAll = false;
  }

  /** Close every connection and stop retrying. */
  close(): void {
    this.#closed = true;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#client?.close();
  }
}

/** `md <base64 key> b`: a delete that is safe for any key bytes. */
function metaDelete(key: string): Uint8Array {
  const raw = new Uint8Array(key.length);
  for (let i = 0; i < key.length; i++) raw[i] = key.charCodeAt(i);
  const out = new Uint8Array(base64Length(raw.length) + 8);
  out.set([109, 100, 32]); // "md "
  let p = base64Encode(raw, 0, raw.length, out, 3);
  for (const c of [32, 98, 13, 10]) out[p++] = c; // " b\r\n"
  return out.subarray(0, p);
}

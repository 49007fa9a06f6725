/**
 * The proxy's listener and client connections. A connection reads into a
 * reused buffer, parses every complete request with the one parser, hands
 * each to the router, and writes replies in request order, batched: all
 * replies that are ready go out in one write.
 * @module
 */

import { carveCopy, PARSE_CLOSE, parseRequest, Request, Writer } from "../protocol/mod.ts";
import { closeQuietly, isDisconnect, ReadBuffer, writeAll } from "../transport/mod.ts";
import { log } from "../log.ts";
import { AUTH_CLOSE, type Authenticator, AuthSession } from "../auth/mod.ts";
import { Next, type ReplySink, type Router } from "./router/mod.ts";

/** Listener settings. */
export interface ProxyServerOptions {
  /** Address to bind. */
  hostname: string;
  /** TCP port; 0 picks a free one. */
  port: number;
  /** Max simultaneous client connections (-n). */
  maxConnections: number;
  /** Largest value accepted from clients (backends may refuse smaller ones). */
  maxValue: number;
  /** Clients must log in first, as with memcached -Y (--auth-file). */
  auth?: Authenticator;
}

const INITIAL_BUFFER = 16384;
/** Requests in flight per connection before reading pauses (back-pressure). */
const MAX_IN_FLIGHT = 4096;
/** Unsent reply bytes per connection before reading pauses. */
const MAX_UNSENT = 8 * 1048576;
const TOO_MANY = new TextEncoder().encode("ERROR Too many open connections\r\n");

type Slot = Uint8Array | readonly Uint8Array[] | undefined;

/** One client connection: ordered reply slots and batched writes. */
class ProxyConnection implements ReplySink {
  readonly #conn: Deno.Conn;
  readonly #router: Router;
  readonly #maxValue: number;
  #out = new Writer();
  #spare = new Writer();
  /** Replies not written yet, from ticket #head on; undefined = still waiting. */
  #slots: Slot[] = [];
  #slotHead = 0;
  #head = 0;
  #next = 0;
  #writing = false;
  #flushQueued = false;
  #closed = false;
  #closeAt = -1;
  #drained: (() => void) | undefined;
  readonly #gone: PromiseWithResolvers<void> = Promise.withResolvers();

  readonly #auth: AuthSession | null;

  constructor(conn: Deno.Conn, router: Router, maxValue: number, auth?: Authenticator) {
    this.#conn = conn;
    this.#router = router;
    this.#maxValue = maxValue;
    this.#auth = auth ? new AuthSession(auth, router.stats) : null;
  }

  /**
   * Before login the bytes go to the login reader, never to the backends;
   * its replies of one read batch go out as one reply. True: read on.
   */
  #readLogin(rb: ReadBuffer, auth: AuthSession): boolean {
    const out = new Writer(256);
    let more = true;
    while (rb.settle()) {
      const used = auth.readText(rb.buf, rb.start, rb.end, out);
      if (used === 0) break;
      if (used === AUTH_CLOSE) {
        more = false;
        break;
      }
      rb.start += used;
      if (auth.authenticated) break;
    }
    if (out.length > 0) this.reply(out.view().slice());
    if (!more) this.closeAfterReplies();
    return more;
  }

  /** Read, parse and route until the client goes away. */
  async run(): Promise<void> {
    const rb = new ReadBuffer(INITIAL_BUFFER);
    const req = new Request();
    const router = this.#router;
    try {
      while (!this.#closed && this.#closeAt < 0) {
        if (this.#next - this.#head > MAX_IN_FLIGHT || this.#out.length > MAX_UNSENT) {
          await new Promise<void>((r) => this.#drained = r);
          continue;
        }
        const auth = this.#auth;
        if (auth && !auth.authenticated) {
          if (!await rb.fill(this.#conn, auth.need)) break;
          if (!this.#readLogin(rb, auth) || !auth.authenticated) continue;
        } else if (!await rb.fill(this.#conn, req.need)) break;
        while (this.#closeAt < 0 && rb.settle()) {
          const used = parseRequest(rb.buf, rb.start, rb.end, req, this.#maxValue);
          if (used === 0) break;
          if (used === PARSE_CLOSE) {
            this.closeAfterReplies();
            break;
          }
          const raw = rb.buf.subarray(rb.start, rb.start + used);
          rb.start += used;
          if (router.handle(req, raw, this) === Next.CLOSE) this.closeAfterReplies();
          if (req.swallow > 0) rb.skip(req.swallow);
          else if (req.swallowLine) rb.skipLine();
        }
      }
      // EOF or quit: finish what was asked, then close.
      this.closeAfterReplies();
    } catch (err) {
      if (!isDisconnect(err)) log.warn(`proxy: client connection: ${err}`);
      this.#close();
    }
    await this.#gone.promise;
  }

  reserve(): number {
    this.#slots.push(undefined);
    return this.#next++;
  }

  fill(ticket: number, reply: Uint8Array | readonly Uint8Array[]): void {
    if (this.#closed) return;
    this.#slots[ticket - this.#slotBase()] = reply;
    if (ticket === this.#head) this.#drain();
  }

  fillFrame(ticket: number, buf: Uint8Array, start: number, length: number): void {
    if (this.#closed) return;
    if (ticket !== this.#head) {
      this.#slots[ticket - this.#slotBase()] = carveCopy(buf, start, start + length);
      return;
    }
    // The head: straight into the output, no copy of its own.
    this.#out.bytes(buf, start, start + length);
    this.#slotHead++;
    this.#head++;
    this.#drain();
  }

  reply(bytes: Uint8Array): void {
    if (this.#closed) return;
    if (this.#head === this.#next) {
      this.#out.bytes(bytes);
      this.#schedule();
      return;
    }
    this.fill(this.reserve(), bytes);
  }

  closeAfterReplies(): void {
    if (this.#closeAt < 0) this.#closeAt = this.#next;
    if (this.#head === this.#closeAt) this.#schedule();
  }

  #slotBase(): number {
    return this.#head - this.#slotHead;
  }

  /** Move every ready reply at the head into the output buffer. */
  #drain(): void {
    const slots = this.#slots;
    let i = this.#slotHead;
    const out = this.#out;
    while (i < slots.length) {
      const s = slots[i];
      if (s === undefined) break;
      if (s instanceof Uint8Array) out.bytes(s);
      else for (const p of s) out.bytes(p);
      slots[i] = undefined;
      i++;
      this.#head++;
    }
    if (i === slots.length) {
      slots.length = 0;
      this.#slotHead = 0;
    } else if (i > 1024 && i * 2 > slots.length) {
      this.#slots = slots.slice(i);
      this.#slotHead = 0;
    } else this.#slotHead = i;
    this.#schedule();
    this.#wake();
  }

  #wake(): void {
    const d = this.#drained;
    if (d !== undefined && this.#next - this.#head <= MAX_IN_FLIGHT / 2) {
      this.#drained = undefined;
      d();
    }
  }

  #schedule(): void {
    if (this.#flushQueued || this.#writing) return;
    this.#flushQueued = true;
    // After the current batch of replies (all resolved in this turn) is in.
    queueMicrotask(() => this.#flush());
  }

  async #flush(): Promise<void> {
    this.#flushQueued = false;
    if (this.#writing || this.#closed) return;
    this.#writing = true;
    try {
      while (this.#out.length > 0 && !this.#closed) {
        const w = this.#out;
        this.#out = this.#spare;
        this.#spare = w;
        await writeAll(this.#conn, w.view());
        w.reset();
        this.#wake();
      }
    } catch (err) {
      if (!isDisconnect(err)) log.warn(`proxy: client write: ${err}`);
      this.#close();
      return;
    } finally {
      this.#writing = false;
    }
    if (this.#closeAt >= 0 && this.#head >= this.#closeAt) this.#close();
    else if (this.#drained !== undefined && this.#out.length === 0) this.#wake();
  }

  #close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#slots = [];
    try {
      this.#conn.close();
    } catch {
      // already closed
    }
    const d = this.#drained;
    this.#drained = undefined;
    d?.();
    this.#gone.resolve();
  }
}

/** The proxy's TCP listener. */
export class ProxyServer {
  readonly #options: ProxyServerOptions;
  readonly #router: Router;
  #listener: Deno.TcpListener | undefined;
  readonly #conns = new Set<Deno.Conn>();
  #stopped = false;
  readonly #done: PromiseWithResolvers<void> = Promise.withResolvers();

  /** A server routing through `router`; call {@linkcode listen} to start. */
  constructor(options: ProxyServerOptions, router: Router) {
    this.#options = options;
    this.#router = router;
  }

  /** The bound port. */
  get port(): number {
    return this.#listener?.addr.port ?? this.#options.port;
  }

  /** Resolves once the server has stopped. */
  get finished(): Promise<void> {
    return this.#done.promise;
  }

  /** Bind (throws AddrInUse etc. before serving) and start accepting. */
  listen(): void {
    this.#listener = Deno.listen({
      hostname: this.#options.hostname,
      port: this.#options.port,
      transport: "tcp",
    });
    this.#accept(this.#listener);
  }

  async #accept(listener: Deno.TcpListener): Promise<void> {
    const stats = this.#router.stats;
    try {
      for await (const conn of listener) {
        stats.totalConnections++;
        if (this.#conns.size >= this.#options.maxConnections) {
          stats.rejectedConnections++;
          writeAll(conn, TOO_MANY).catch(() => {}).finally(() => {
            try {
              conn.close();
            } catch { /* closed */ }
          });
          continue;
        }
        conn.setNoDelay(true);
        this.#conns.add(conn);
        stats.currConnections++;
        const c = new ProxyConnection(
          conn,
          this.#router,
          this.#options.maxValue,
          this.#options.auth,
        );
        c.run().catch((err) => log.warn(`proxy: connection: ${err}`)).finally(() => {
          this.#conns.delete(conn);
          stats.currConnections--;
        });
      }
    } catch (err) {
      if (!this.#stopped && !(err instanceof Deno.errors.BadResource)) throw err;
    }
  }

  /** Stop accepting and close every client connection. */
  stop(): void {
    if (this.#stopped) return;
    this.#stopped = true;
    if (this.#listener) closeQuietly(this.#listener);
    for (const c of this.#conns) closeQuietly(c);
    this.#done.resolve();
  }
}

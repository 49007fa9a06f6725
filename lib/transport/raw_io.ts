/**
 * Reads and writes straight through Deno's `read`/`write` ops on a
 * connection's resource id, skipping the `Deno.Conn` wrappers.
 *
 * `Deno.Conn.read` is an async function around the op: one more promise and
 * await per read, a try/finally and a Set add and delete (it tracks pending
 * reads for `unref`, which memrep never calls). Measured on a trivial
 * memcached-like server under memcaslap, going to the ops directly spends
 * 0.88x the CPU per request (see the README's benchmark notes). The ops are
 * the same ones the wrappers call, so bytes, errors and closing behave
 * alike. They are reached through `Deno[Deno.internal].core`, which is not a
 * public API: when this Deno does not have them, {@linkcode rawIo} falls
 * back to the public methods.
 * @module
 */

/** The two ops and the symbol under which a connection keeps its resource id. */
interface CoreOps {
  read(rid: number, buf: Uint8Array): Promise<number>;
  write(rid: number, buf: Uint8Array): Promise<number>;
  internalRidSymbol: symbol;
}

/** Reads and writes of one connection; `read` resolves 0 at the end of the stream. */
export interface RawIo {
  /** Read into `buf` (never empty); resolves the byte count, 0 at end of stream. */
  read(buf: Uint8Array): Promise<number>;
  /** Write some of `buf` (maybe not all); resolves the byte count. */
  write(buf: Uint8Array): Promise<number>;
}

function findCore(): CoreOps | null {
  try {
    const d = Deno as unknown as Record<symbol, unknown>;
    const internal = (Deno as unknown as { internal?: symbol }).internal;
    if (typeof internal !== "symbol") return null;
    const core = (d[internal] as { core?: Partial<CoreOps> } | undefined)?.core;
    if (
      core && typeof core.read === "function" && typeof core.write === "function" &&
      typeof core.internalRidSymbol === "symbol"
    ) return core as CoreOps;
  } catch { /* no internals: public API */ }
  return null;
}

const CORE = findCore();

class OpIo implements RawIo {
  #rid: number;
  #core: CoreOps;
  constructor(core: CoreOps, rid: number) {
    this.#core = core;
    this.#rid = rid;
  }
  read(buf: Uint8Array): Promise<number> {
    return this.#core.read(this.#rid, buf);
  }
  write(buf: Uint8Array): Promise<number> {
    return this.#core.write(this.#rid, buf);
  }
}

function zeroAtEnd(n: number | null): number {
  return n ?? 0;
}

class ConnIo implements RawIo {
  #conn: Deno.Conn;
  constructor(conn: Deno.Conn) {
    this.#conn = conn;
  }
  read(buf: Uint8Array): Promise<number> {
    return this.#conn.read(buf).then(zeroAtEnd);
  }
  write(buf: Uint8Array): Promise<number> {
    return this.#conn.write(buf);
  }
}

/**
 * The cheapest reads and writes for `conn`: Deno's ops on its resource id
 * when this Deno exposes them, else its own `read` and `write`. Closing
 * stays `conn.close()`.
 */
export function rawIo(conn: Deno.Conn): RawIo {
  if (CORE !== null) {
    const rid = (conn as unknown as Record<symbol, unknown>)[CORE.internalRidSymbol];
    if (typeof rid === "number") return new OpIo(CORE, rid);
  }
  return new ConnIo(conn);
}

/** Whether {@linkcode rawIo} reaches Deno's ops (false: the public wrappers). */
export const RAW_OPS: boolean = CORE !== null;

/**
 * The open connections of one serve thread, for `stats conns` (memcached's
 * per-connection lines; with serve threads the asking one merges the
 * others' {@linkcode ConnTable.rows}, ids come from shared memory so they
 * are unique) and `-o idle_timeout` (a connection silent that long
 * is closed, counted as `idle_kicks`). The connection loop only stamps
 * `Session.lastCmd` once per read batch; everything else runs when asked
 * or once a second while idle_timeout is set.
 * @module
 */

import type { Writer } from "../protocol/mod.ts";
import { closeQuietly } from "../transport/mod.ts";
import { statLine } from "./stats.ts";
import type { Watcher, Watchers } from "./watch.ts";

/** What the table needs of a connection's session. */
export interface ConnSession {
  /** Clock seconds of the last request read (stamped by the connection loop); unset until one. */
  lastCmd?: number;
  /** True while a request waits for the rest of its data (memcached's conn_nread). */
  nread?: boolean;
  /** Set once the connection ran `watch`: it then only receives log lines. */
  watcher?: Watcher | null;
  /** Its id, given by {@linkcode ConnTable.add} (`stats conns`, watch's `cfd`). */
  id?: number;
  /** Set when the server closes it for a protocol error (watch: `reason=error`). */
  error?: boolean;
}

interface Entry {
  id: number;
  /** Clock seconds when it connected (its last command's time until it sends one). */
  opened: number;
  conn: Deno.Conn;
  listen: string;
}

/**
 * memcached's names: `tcp:1.2.3.4:p`, `tcp6:[::1]:p` (`udp`, `udp6` for a
 * UDP socket's); an IPv4 peer of a dual-stack socket as IPv4.
 */
function tcp(addr: Deno.Addr, proto = "tcp"): string {
  if (addr.transport === "tcp" || addr.transport === "udp") {
    const host = unmapped(addr.hostname);
    return host.includes(":")
      ? `${proto}6:[${host}]:${addr.port}`
      : `${proto}:${host}:${addr.port}`;
  }
  return `${addr.transport}:${"path" in addr ? addr.path : ""}`;
}

/** `::ffff:1.2.3.4` (an IPv4 peer reaching an IPv6 socket) as `1.2.3.4`. */
function unmapped(host: string): string {
  return host.startsWith("::ffff:") && host.includes(".") ? host.slice(7) : host;
}

/** A client's address: a unix-domain peer has no name (memcached prints its empty sockaddr so). */
function peer(addr: Deno.Addr): string {
  return addr.transport === "unix" ? "?:<AF 0>" : tcp(addr);
}

/** What `stats conns` shows of a UDP socket's session (datagram.ts). */
export interface DatagramConnSession extends ConnSession {
  /** The sender of the request under way, null while idle. */
  peer: Deno.NetAddr | null;
  /** A request waiting for more datagrams: memcached's state then. */
  waiting: string | null;
}

interface DatagramEntry {
  session: DatagramConnSession;
  /** Its ids and addresses: `perSocket` of each address. */
  ids: number[];
  addrs: string[];
}

/** One thread's connections, by session. */
export class ConnTable {
  /** -o idle_timeout in seconds (0: never). */
  idleTimeout = 0;
  #now: () => number;
  #kicked: () => void;
  #watchers: Watchers;
  #started: number;
  #listeners: { id: number; addr: string }[] = [];
  #entries = new Map<ConnSession, Entry>();
  #datagrams: DatagramEntry[] = [];
  #nextId = 1;
  #shared: Int32Array | null = null;
  #sweep: ReturnType<typeof setInterval> | undefined;

  /** A table reading clock seconds from `now`; `kicked` counts an idle close (idle_kicks). */
  constructor(now: () => number, kicked: () => void, watchers: Watchers) {
    this.#now = now;
    this.#kicked = kicked;
    this.#watchers = watchers;
    this.#started = now();
  }

  /** Number connections from slot 0 of `registry`, shared by the serve threads. */
  share(registry: Int32Array): void {
    this.#shared = registry;
    // Ids this table gave out before sharing (the main thread's listeners) stay taken.
    if (Atomics.load(registry, 0) < this.#nextId - 1) Atomics.store(registry, 0, this.#nextId - 1);
  }

  #id(): number {
    return this.#shared === null ? this.#nextId++ : Atomics.add(this.#shared, 0, 1) + 1;
  }

  /**
   * A listening socket, shown as `conn_listening`. memcached keeps a
   * listener's address in a sockaddr_in6-sized copy: a unix path shows its
   * first 26 bytes there (its clients' listen_addr has all of it).
   */
  addListener(addr: Deno.Addr): void {
    const shown = addr.transport === "unix" && addr.path
      ? `unix:${new TextDecoder().decode(new TextEncoder().encode(addr.path).subarray(0, 26))}`
      : tcp(addr);
    this.#listeners.push({ id: this.#id(), addr: shown });
  }

  /**
   * A UDP socket bound on `addrs` (one dual-stack socket stands for two),
   * shown as memcached shows its UDP connections: `perSocket` of each
   * (memcached's one per thread), the first with the session's state.
   */
  addDatagram(session: DatagramConnSession, addrs: Deno.Addr[], perSocket: number): void {
    const entry: DatagramEntry = { session, ids: [], addrs: [] };
    for (const a of addrs) {
      for (let i = 0; i < perSocket; i++) {
        entry.ids.push(this.#id());
        entry.addrs.push(tcp(a, "udp"));
      }
    }
    session.id = entry.ids[0];
    this.#datagrams.push(entry);
  }

  /** A new client connection on the listener at `listen`. */
  add(session: ConnSession, conn: Deno.Conn, listen: Deno.Addr): void {
    const opened = this.#now();
    session.lastCmd = undefined; // memcached's conn_new_cmd until it sends something
    const id = this.#id();
    session.id = id;
    // memcached's listen_addr is the connection's own end (a wildcard's client shows where it came in).
    const local = listen.transport === "tcp" ? conn.localAddr : listen;
    this.#entries.set(session, { id, conn, opened, listen: tcp(local) });
    this.#watchers.refresh(); // outside a batch: another thread may have a watcher since
    if (this.#watchers.active) this.#connEvent(true, conn, id);
    if (this.idleTimeout > 0 && this.#sweep === undefined) {
      const sweep = setInterval(() => this.#kickIdle(), 1000);
      Deno.unrefTimer(sweep as unknown as number);
      this.#sweep = sweep;
    }
  }

  /** The connection of `session` closed. */
  remove(session: ConnSession): void {
    const e = this.#entries.get(session);
    this.#entries.delete(session);
    if (session.watcher) this.#watchers.remove(session.watcher);
    this.#watchers.refresh();
    if (e && this.#watchers.active) this.#connEvent(false, e.conn, e.id, session.error === true);
    if (this.#entries.size === 0 && this.#sweep !== undefined) {
      clearInterval(this.#sweep);
      this.#sweep = undefined;
    }
  }

  /** Stop the idle sweep (server stop). */
  close(): void {
    if (this.#sweep !== undefined) clearInterval(this.#sweep);
    this.#sweep = undefined;
  }

  #connEvent(open: boolean, conn: Deno.Conn, id: number, error = false): void {
    const a = conn.remoteAddr;
    const reason = error ? "error" : "normal";
    if (a.transport === "tcp") {
      this.#watchers.connection(open, unmapped(a.hostname), a.port, reason, id);
    } else if (a.transport === "unix") {
      // memcached names a unix-domain peer rip=unix rport=0 transport=local.
      this.#watchers.connection(open, "unix", 0, reason, id, "local");
    }
    this.#watchers.sendForwarded(); // (outside a batch)
  }

  #kickIdle(): void {
    const now = this.#now();
    for (const [session, e] of this.#entries) {
      // A watcher only listens (memcached's conn_watch is outside the idle check).
      if (session.watcher) continue;
      if (now - (session.lastCmd ?? e.opened) > this.idleTimeout) {
        this.#kicked();
        this.#entries.delete(session);
        closeQuietly(e.conn);
      }
    }
  }

  /**
   * `stats conns` lines (no END): this thread's listeners, then every
   * connection, with `others` (other threads' {@linkcode rows}) merged in
   * id order; see {@linkcode rows} for the states.
   */
  write(out: Writer, asking: ConnSession | null, others: ConnRow[] = []): void {
    const now = this.#now();
    for (const l of this.#listeners) {
      statLine(out, `${l.id}:addr`, l.addr);
      statLine(out, `${l.id}:state`, "conn_listening");
      statLine(out, `${l.id}:secs_since_last_cmd`, now - this.#started);
    }
    const rows = this.rows(asking);
    if (others.length > 0) {
      rows.push(...others);
      rows.sort((a, b) => a[0] - b[0]);
    }
    for (const r of rows) out.text(r[1]);
  }

  /**
   * This thread's connections as `stats conns` lines: the asking one is
   * `conn_parse_cmd`, one inside a value `conn_nread`, a watcher
   * `conn_watch`, the others wait for a request (`conn_read`).
   */
  rows(asking: ConnSession | null): ConnRow[] {
    const now = this.#now();
    const rows: ConnRow[] = [];
    for (const d of this.#datagrams) {
      const s = d.session;
      const secs = now - (s.lastCmd ?? this.#started);
      d.ids.forEach((id, i) => {
        // An idle UDP connection shows its own address, a busy one its sender's (memcached).
        const state = i > 0
          ? "conn_read"
          : s === asking
          ? "conn_parse_cmd"
          : s.waiting ?? "conn_read";
        const lines = state === "conn_read" || s.peer === null
          ? `STAT ${id}:addr ${d.addrs[i]}\r\n`
          : `STAT ${id}:addr ${tcp(s.peer, "udp")}\r\nSTAT ${id}:listen_addr ${d.addrs[i]}\r\n`;
        rows.push([
          id,
          `STAT ${id}:UDP UDP\r\n${lines}STAT ${id}:state ${state}\r\n` +
          `STAT ${id}:secs_since_last_cmd ${i > 0 ? now - this.#started : secs}\r\n`,
        ]);
      });
    }
    for (const [session, e] of this.#entries) {
      let addr = "";
      try {
        addr = peer(e.conn.remoteAddr);
      } catch { /* closed meanwhile */ }
      const state = session === asking
        ? "conn_parse_cmd"
        : session.watcher
        ? "conn_watch"
        : session.nread
        ? "conn_nread"
        : session.lastCmd === undefined
        ? "conn_new_cmd"
        : "conn_read";
      const id = e.id;
      rows.push([
        id,
        `STAT ${id}:addr ${addr}\r\nSTAT ${id}:listen_addr ${e.listen}\r\n` +
        `STAT ${id}:state ${state}\r\nSTAT ${id}:secs_since_last_cmd ${
          now - (session.lastCmd ?? e.opened)
        }\r\n`,
      ]);
    }
    return rows;
  }
}

/** One connection's `stats conns` lines, with its id (they cross threads as this). */
export type ConnRow = [id: number, lines: string];

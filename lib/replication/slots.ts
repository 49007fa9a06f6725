/**
 * Slots for incoming handshakes. Anyone who reaches the replication port
 * can open connections and say nothing; a fixed number of slots that
 * refuses newcomers when full would let 16 idle connections keep a
 * restarted peer out for good. So a newcomer always gets a slot: when all
 * are taken, one pending handshake is closed instead, an idle one (no
 * greeting yet) if any, of the source holding the most, its oldest. (Each
 * also has a short deadline, set by pairing.ts.)
 * @module
 */

import { closeQuietly } from "../transport/mod.ts";
import { log } from "../log.ts";

/** Incoming handshakes under way at once, at most. */
export const MAX_HANDSHAKES = 16;

/** One incoming connection still in its handshake. */
export interface HandshakeSlot {
  /** The connection (closed when evicted). */
  readonly conn: Deno.Conn;
  /** Source address: evictions go by source. */
  readonly host: string;
  /** "host:port", for the log. */
  readonly peer: string;
  /** It sent a valid greeting (not idle): evicted only when every one has. */
  greeted: boolean;
}

/** The pending incoming handshakes, oldest first. */
export class HandshakeSlots {
  #pending = new Set<HandshakeSlot>();
  #max: number;

  /** At most `max` pending handshakes. */
  constructor(max = MAX_HANDSHAKES) {
    this.#max = max;
  }

  /** Pending handshakes now. */
  get size(): number {
    return this.#pending.size;
  }

  /** A slot for a new connection, closing another pending one when all are taken. */
  take(conn: Deno.Conn, host: string, peer: string): HandshakeSlot {
    if (this.#pending.size >= this.#max) this.#evict();
    const slot: HandshakeSlot = { conn, host, peer, greeted: false };
    this.#pending.add(slot);
    return slot;
  }

  /** The handshake ended (either way). */
  release(slot: HandshakeSlot): void {
    this.#pending.delete(slot);
  }

  #evict(): void {
    const all = [...this.#pending];
    const idle = all.filter((s) => !s.greeted);
    const candidates = idle.length > 0 ? idle : all;
    const count = new Map<string, number>();
    for (const s of candidates) count.set(s.host, (count.get(s.host) ?? 0) + 1);
    // Oldest first: the first one of the busiest source is its oldest.
    let victim = candidates[0];
    for (const s of candidates) if (count.get(s.host)! > count.get(victim.host)!) victim = s;
    this.#pending.delete(victim);
    closeQuietly(victim.conn);
    log.debug(`replication: too many pending handshakes, closed ${victim.peer}`);
  }
}

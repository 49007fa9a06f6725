/**
 * What serve threads tell each other through the worker messaging of
 * threads.ts: `stats conns` asks every other thread for its connections,
 * `watch` lines emitted on one thread reach the watchers of the others, and
 * the main thread's reloaded `-Y` users reach the others.
 * The main thread relays (see threads.ts); this module only knows messages.
 * @module
 */

import type { ConnRow } from "./conns.ts";

/** A message between serve threads. */
export type PeerBody =
  | { kind: "conns?"; ask: number }
  | { kind: "conns"; ask: number; rows: ConnRow[] }
  | { kind: "log"; lines: string[]; flags: number[] }
  | { kind: "auth"; bytes: Uint8Array };

/** The envelope threads.ts routes: from thread `from` to `to` (-1: every other thread). */
export interface PeerMessage {
  /** Tag among the worker messages. */
  type: "peer";
  /** Sending thread. */
  from: number;
  /** Receiving thread, or -1 for all others. */
  to: number;
  /** The message. */
  body: PeerBody;
}

/** How long `stats conns` waits for the other threads (a stopping one may not answer). */
const ASK_WAIT_MS = 1000;

/** One thread's end of the messaging: sends, and matches answers to questions. */
export class Peers {
  /** This thread's number. */
  readonly thread: number;
  #threads: number;
  #send: (to: number, body: PeerBody) => void;
  #asks = new Map<number, { rows: ConnRow[]; left: number; done: () => void }>();
  #nextAsk = 1;

  /** Thread `thread` of `threads`, sending through `send`. */
  constructor(thread: number, threads: number, send: (to: number, body: PeerBody) => void) {
    this.thread = thread;
    this.#threads = threads;
    this.#send = send;
  }

  /** Send to thread `to` (-1: all others). */
  send(to: number, body: PeerBody): void {
    this.#send(to, body);
  }

  /** Every other thread's connection rows (those that answered within a second). */
  askConns(): Promise<ConnRow[]> {
    const ask = this.#nextAsk++;
    const { promise, resolve } = Promise.withResolvers<ConnRow[]>();
    const rows: ConnRow[] = [];
    const done = () => {
      clearTimeout(timer);
      this.#asks.delete(ask);
      resolve(rows);
    };
    this.#asks.set(ask, { rows, left: this.#threads - 1, done });
    const timer = setTimeout(done, ASK_WAIT_MS);
    this.#send(-1, { kind: "conns?", ask });
    return promise;
  }

  /** An answer to {@linkcode askConns}. */
  answered(ask: number, rows: ConnRow[]): void {
    const a = this.#asks.get(ask);
    if (a === undefined) return; // too late
    a.rows.push(...rows);
    if (--a.left <= 0) a.done();
  }
}

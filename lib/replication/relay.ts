/**
 * Which of the changes a group member passes on cross one link (groups of
 * 3+, see group.ts, Topology): the peer reports with HAVE how far it holds
 * each other member's stream and whether it has a link to that member;
 * what it holds is left out (a SKIP), and while it has a link to a
 * change's origin the change waits a moment for that HAVE instead of
 * crossing the link a second time.
 * @module
 */

import type { ForwardedRun, ForwardPolicy } from "./backlog.ts";
import type { KnownStream } from "./snapshot.ts";
import { writeControl } from "./stream.ts";
import type { Writer } from "../protocol/mod.ts";

/**
 * Longest wait (ms) before passing on a change to a peer that reported a
 * link to the change's origin: its HAVE usually says it got the change
 * directly first. A cut or hung link of theirs costs the relayed changes
 * this much lag; a slower HAVE only a second copy of the change.
 */
const HOLD_MS = 100;

/** A member's stream this node holds (HAVE), and whether it has a link to the member. */
export interface HeldStream extends KnownStream {
  /** This node has a link to the member. */
  up: boolean;
}

/** What a peer reported with HAVE of another member's stream. */
interface Have {
  stream: string;
  offset: number;
  up: boolean;
}

/** One link's view of what its peer holds of the other members' streams. */
export class RelayFilter implements ForwardPolicy {
  #peer: number;
  #holdMs: number;
  #wake: () => void;
  #have = new Map<number, Have>();
  #timer: ReturnType<typeof setTimeout> | undefined;

  /** For the link to member `peer`; `wake` restarts its writer when a hold is over. */
  constructor(peer: number, timeoutMs: number, wake: () => void) {
    this.#peer = peer;
    this.#holdMs = Math.min(HOLD_MS, timeoutMs / 4);
    this.#wake = wake;
  }

  /** Our HAVE frames, for the peer: what this node holds of the other members' streams. */
  writeHave(out: Writer, held: HeldStream[]): void {
    for (const h of held) writeControl(out, "HAVE", h.member, h.id, h.offset, h.up ? 1 : 0);
  }

  /** The peer's HAVE: it holds `member`'s stream `stream` up to `offset`; `up`: linked to it. */
  report(member: number, stream: string, offset: number, up: boolean): void {
    this.#have.set(member, { stream, offset, up });
  }

  /** How far the peer holds the run's origin stream (its own: all of it). */
  has(run: ForwardedRun): number {
    if (run.origin === this.#peer) return Infinity; // its own change, passed back
    const h = this.#have.get(run.origin);
    return h !== undefined && h.stream === run.stream ? h.offset : -1;
  }

  /**
   * Whether to wait before sending what the peer lacks of `run`: while it
   * reports a link to the run's origin, for up to the hold after the run
   * arrived (a timer wakes the writer then).
   */
  hold(run: ForwardedRun): boolean {
    if (this.#have.get(run.origin)?.up !== true) return false;
    const wait = run.time + this.#holdMs - performance.now();
    if (wait <= 0) return false;
    this.#timer ??= setTimeout(() => {
      this.#timer = undefined;
      this.#wake();
    }, Math.ceil(wait));
    return true;
  }

  /** The link closed: no more wake-ups. */
  close(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
  }
}

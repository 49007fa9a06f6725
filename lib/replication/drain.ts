/**
 * The last step of a stop: wait (bounded) until the peer applied the rest
 * of this node's stream, then say how it ended, in repcached's words when
 * all went well ("replication: cleanup complete").
 * @module
 */

import { Writer } from "../protocol/mod.ts";
import { log } from "../log.ts";
import type { Backlog } from "./backlog.ts";
import type { Link } from "./link.ts";
import { FrameParser } from "./stream.ts";

/** What a drain watches. */
export interface DrainSource {
  /** This node's stream. */
  readonly backlog: Backlog;
  /** Stream offset the peer confirmed (a frame boundary). */
  confirmed(): number;
  /** Resolves at the next confirmation, when the link closes, or when abandoned. */
  progress(): Promise<void>;
  /** True once the wait was given up (a second signal). */
  abandoned(): boolean;
  /** A group's peers (0: a pair, whose messages say "the peer"). */
  peers?: number;
}

/**
 * Wait at most `ms` until the peers of `links` (the pair's one, or a
 * group's linked ones) confirmed the whole stream. No link (or `ms` 0):
 * return at once, logging what the peers did not get.
 */
export async function drainToPeer(src: DrainSource, links: Link[], ms: number): Promise<void> {
  const end = src.backlog.end;
  const open = () => links.some((l) => !l.closed);
  if (src.confirmed() >= end) {
    log.info("replication: cleanup complete");
    return;
  }
  if (!open() || ms <= 0) {
    leftOver(src, links, end, open() ? "--repl-drain-timeout 0" : "no peer linked");
    return;
  }
  const to = src.peers ? `${links.length} of ${src.peers} peers` : "the peer";
  log.info(`replication: cleanup (${end - src.confirmed()} bytes to ${to})`);
  // A stopped peer that resumes within the drain time still gets it all.
  for (const link of links) link.draining = true;
  const deadline = performance.now() + ms;
  let timer: ReturnType<typeof setTimeout> | undefined;
  while (
    src.confirmed() < end && open() && !src.abandoned() && performance.now() < deadline
  ) {
    const late = new Promise<void>((r) => {
      timer = setTimeout(r, Math.max(1, deadline - performance.now()));
    });
    await Promise.race([src.progress(), late]);
    clearTimeout(timer);
  }
  if (src.confirmed() >= end) log.info("replication: cleanup complete");
  else {
    const why = !open()
      ? links.length > 1 ? "the links closed" : "the link closed"
      : src.abandoned()
      ? "interrupted"
      : `gave up after ${ms} ms`;
    leftOver(src, links, end, why);
  }
}

/** Log what the peer did not confirm. */
function leftOver(src: DrainSource, links: Link[], end: number, why: string): void {
  const from = src.confirmed();
  // Frames can be counted from a confirmed offset (a frame boundary) still held.
  const changes = src.backlog.start <= from
    ? `${countFrames(src.backlog, from, end)} changes`
    : "changes beyond the backlog";
  const copy = links.some((l) => l.sendingCopy) ? "; a full copy was in progress" : "";
  const by = src.peers ? "every peer" : "the peer";
  log.warn(
    `replication: cleanup incomplete (${why}): ${
      end - from
    } bytes (${changes}) not acknowledged by ${by}${copy}`,
  );
}

/** Change frames in backlog[from, to); `from` must be a frame boundary. */
function countFrames(backlog: Backlog, from: number, to: number): number {
  if (to <= from) return 0;
  const w = new Writer(to - from);
  backlog.copyTo(w, from, to);
  const parser = new FrameParser();
  let n = 0;
  for (let at = 0; at < w.length; n++) {
    const used = parser.parse(w.buf, at, w.length);
    if (used <= 0) break;
    at += used;
  }
  return n;
}

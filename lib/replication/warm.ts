/**
 * The replicator's side of a warm restart (`serve -e`; the saved state is
 * resume.ts's): the log line of a restored state, the wait until the
 * restarted node caught up with its peers, and each peer's conditions for
 * the state to save.
 * @module
 */

import { log } from "../log.ts";
import type { Backlog } from "./backlog.ts";
import type { Peer } from "./peer.ts";
import type { ResumeConditions } from "./resume.ts";

/** What a restored node took over, for `replication: warm restart: ...`. */
export function restoredText(
  streamId: string,
  backlog: Backlog,
  goesOn: boolean,
  peers: readonly Peer[],
  group: boolean,
): string {
  const own = goesOn
    ? `stream ${streamId} from offset ${backlog.end} (${backlog.used} bytes unconfirmed)`
    : "a new stream (a full copy to the peer follows)";
  if (group) {
    const known = peers.filter((p) => p.peerStream !== null).length;
    const copies = peers.filter((p) => p.copyNext).length;
    return `${own}, positions in ${known} of ${peers.length} peers' streams (full copies from the others)${
      copies > 0 ? `, ${copies} peers get a new full copy` : ""
    }`;
  }
  const p = peers[0].peerStream;
  return `${own}, ${
    p
      ? `peer stream ${p.id} at offset ${p.offset}`
      : "no position in the peer's stream (a full copy from the peer follows)"
  }`;
}

/**
 * Wait until this node caught up with `peers` (see Peer.caughtUp): every
 * linked one, at least one; a peer without a link is waited for at most
 * `ms`, everything at most 5 x `ms`, or until `stopped()`. True when caught
 * up. Logged either way.
 */
export async function waitCaughtUp(
  peers: readonly Peer[],
  group: boolean,
  ms: number,
  stopped: () => boolean,
): Promise<boolean> {
  const t0 = performance.now();
  for (;;) {
    const waited = performance.now() - t0;
    const linked = peers.filter((p) => p.link !== null && !p.link.closed);
    if (
      linked.length > 0 && linked.every((p) => p.caughtUp()) &&
      (linked.length === peers.length || waited > ms)
    ) {
      log.info(
        `replication: warm restart: caught up with ${
          group ? `${linked.length} of ${peers.length} peers` : "the peer"
        } in ${Math.round(waited)} ms, serving`,
      );
      return true;
    }
    if (stopped() || waited > 5 * ms || (linked.length === 0 && waited > ms)) break;
    await new Promise((r) => setTimeout(r, 10));
  }
  const none = peers.every((p) => p.link === null);
  log.info(
    `replication: warm restart: serving before catching up with the peer${group ? "s" : ""} (${
      none ? "no link" : "still syncing"
    } after ${Math.round(performance.now() - t0)} ms)`,
  );
  return false;
}

/** Each stopped peer's state that decides what of it can resume (for captureResume). */
export function resumeConditions(peers: readonly Peer[]): ResumeConditions[] {
  return peers.map((p) => {
    const ic = p.inCopy;
    return {
      confirmed: p.confirmed,
      sendingCopy: p.outCopy !== null,
      receivingCopy: ic !== null && (!ic.complete || !ic.released),
    };
  });
}

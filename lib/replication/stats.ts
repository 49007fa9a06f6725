/**
 * Replication counters and their `stats` lines (in general `stats` and in
 * `stats replication`).
 * @module
 */

/** Counters kept by the replicator and its links. */
export class ReplicationStats {
  /** Links established since start. */
  links = 0;
  /** Links lost (closed for any reason but shutdown). */
  linkDrops = 0;
  /** Full copies this node sent (completed). */
  fullCopiesSent = 0;
  /** Full copies received completely. */
  fullCopiesReceived = 0;
  /** Links that resumed from the backlog, counted per direction sent. */
  partialResyncs = 0;
  /** Items sent in full copies. */
  itemsCopiedSent = 0;
  /** Items received in full copies (applied or not). */
  itemsCopiedReceived = 0;
  /** Changes appended to the stream by local writes. */
  changesOut = 0;
  /** Incoming changes that changed the store. */
  changesApplied = 0;
  /** Incoming changes that were older (or the same) and ignored. */
  changesIgnored = 0;
  /** Incoming items that could not be stored (memory, size). */
  applyFailures = 0;
  /** Peers refused for authentication. */
  authFailures = 0;
  /**
   * Times changes could not wait for a peer, so a full copy followed: the
   * backlog overran it, or a serve thread's change ring was full.
   */
  backlogOverflows = 0;
  /** Connections refused as not a memrep peer (garbage, wrong version). */
  badPeers = 0;
  /**
   * Versions from the peer refused (changes dropped, clock not moved): out of
   * range or more than MAX_DRIFT_MS ahead of this node's wall clock.
   */
  versionsRejected = 0;
  /** performance.now() of the last warning about refused versions (they are rate limited). */
  versionsWarnedAt: number = -Infinity;
  /** --repl-sync-degrade: write replies acknowledged locally only, no peer confirming. */
  syncDegraded = 0;
  /** --repl-sync: write replies answered SERVER_ERROR, the peer did not confirm in time. */
  syncRefused = 0;
  /** Links closed because a record of the authenticated stream failed its MAC. */
  badMacs = 0;
  /** TLS handshakes with the peer (--repl-tls-*) that failed: untrusted certificate, plain peer. */
  tlsFailures = 0;
  /** Full copies that went on from where a dropped link left them. */
  copyResumes = 0;
  /** Bytes of full-copy frames sent (resent ones included). */
  copyBytesSent = 0;
  /** Items a completed incoming copy dropped: the peer had removed them. */
  copyItemsDropped = 0;
  /** 1 when this process took over replication state saved with its cache (serve -e). */
  warmRestored = 0;
  /** Links after a warm restart on which the peer resumed the saved position from its backlog. */
  warmResumes = 0;
  /** A group's changes learnt from one peer and passed on to the others. */
  changesForwarded = 0;

  /** The counters of `parts` added up (a node's own and its peers'). */
  static sum(parts: ReplicationStats[]): ReplicationStats {
    const total = new ReplicationStats();
    const t = total as unknown as Record<string, number>;
    for (const part of parts) {
      for (const [k, v] of Object.entries(part)) if (k !== "versionsWarnedAt") t[k] += v as number;
    }
    return total;
  }
}

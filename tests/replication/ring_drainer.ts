/**
 * Worker for ring_test.ts: plays the main thread's side of the change ring,
 * draining it when told (after a delay, so the test thread can be blocked
 * meanwhile) and reporting what arrived.
 * @module
 */

import { MainReplicationShare, type ReplicationShare } from "../../lib/replication/threads.ts";
import { Frame, FrameParser } from "../../lib/replication/stream.ts";

/** Messages from the test: the share first, then drain requests. */
export type DrainerRequest = { share: ReplicationShare } | { drainInMs: number };

/** Totals so far, posted after each drain. */
export interface DrainerReport {
  deletes: number;
  flushes: number;
  items: number;
  overflows: number;
}

declare const self: Worker;

const parser = new FrameParser();
const seen: DrainerReport = { deletes: 0, flushes: 0, items: 0, overflows: 0 };
let main: MainReplicationShare | undefined;

self.onmessage = (e: MessageEvent<DrainerRequest>) => {
  const msg = e.data;
  if ("share" in msg) {
    main = new MainReplicationShare(msg.share, {
      frame: () => {
        if (parser.kind === Frame.DELETE) seen.deletes++;
        else if (parser.kind === Frame.FLUSH) seen.flushes++;
        else if (parser.kind === Frame.ITEM) seen.items++;
      },
      overflowed: () => seen.overflows++,
      drained: () => {},
    }, (buf, start, end) => parser.parse(buf, start, end));
    self.postMessage(seen);
    return;
  }
  setTimeout(() => {
    main!.drain();
    self.postMessage(seen);
  }, msg.drainInMs);
};

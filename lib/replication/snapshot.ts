/**
 * The full copy ("marugoto"): every live item, then every tombstone, as
 * CS/CD frames, produced a chunk at a time with a store cursor so the link
 * can interleave it with the live stream and clients keep being served.
 * Changes made while the copy runs travel on the stream, and the receiver
 * merges by version, so nothing written during the copy is lost.
 * @module
 */

import type { Writer } from "../protocol/mod.ts";
import { decodeAscii } from "../protocol/bytes.ts";
import type { Store } from "../store/mod.ts";
import { wireBits } from "./merge.ts";
import type { Merger } from "./merge.ts";
import { VERB, writeDeleteFrame, writeItemFrame } from "./stream.ts";

/** Items visited per store scan call. */
const SCAN_BATCH = 256;

/** One full copy in progress. */
export class Snapshot {
  /** Items written so far. */
  items = 0;
  /** Tombstones written so far. */
  tombstones = 0;
  #store: Store;
  #merger: Merger;
  #startUnix: number;
  #cursor = 0;
  #tombs: Iterator<[string, number]> | null = null;
  #key = new Uint8Array(256);

  /** A copy of `store` (and `merger`'s tombstones); expiry is written as unix time. */
  constructor(store: Store, merger: Merger, startUnix: number) {
    this.#store = store;
    this.#merger = merger;
    this.#startUnix = startUnix;
  }

  /** Append about `budget` bytes of frames to `out`; true once everything was written. */
  fill(out: Writer, budget: number): boolean {
    const store = this.#store;
    const limit = out.length + budget;
    const touches = this.#merger.touches;
    while (this.#cursor >= 0 && out.length < limit) {
      this.#cursor = store.scan(this.#cursor, SCAN_BATCH, (h) => {
        let touch = 0;
        if (touches.size > 0) {
          const ko = store.keyOffset(h);
          touch = touches.get(decodeAscii(store.buffer(h), ko, ko + store.keyLength(h))) ?? 0;
        }
        const bits = wireBits(store.userBits(h));
        writeItemFrame(out, VERB.CS, store, h, bits, touch, this.#startUnix);
        this.items++;
      });
    }
    if (this.#cursor >= 0) return false;
    this.#tombs ??= this.#merger.tombstones.entries();
    while (out.length < limit) {
      const next = this.#tombs.next();
      if (next.done) return true;
      const [name, version] = next.value;
      const n = Math.min(name.length, this.#key.length);
      for (let i = 0; i < n; i++) this.#key[i] = name.charCodeAt(i);
      writeDeleteFrame(out, VERB.CD, this.#key, 0, n, version);
      this.tombstones++;
    }
    return false;
  }
}

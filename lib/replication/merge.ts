/**
 * Applying the peer's changes: newer version wins, deletes leave
 * tombstones and flush_all leaves an epoch, so a late older write can never
 * bring data back, and both nodes end with the same state whatever order
 * the changes arrive in.
 *
 * Rules for an incoming item of version v against the local state:
 * - local item with version < v: replaced; > v: kept.
 * - equal versions are the same write: same value and flags → the expiry
 *   of the later touch wins (touches carry their own version, since a touch
 *   keeps the CAS); different bytes (explicit meta `E` on both sides) → the
 *   larger (value, flags) wins, on both nodes alike.
 * - no local item: refused when a tombstone of version >= v or a flush
 *   epoch > v says it was deleted later, or when an item of version >= v
 *   expired here (an expiry guard: the newer write is gone, the older one
 *   must not come back in its place); stored otherwise.
 * - an incoming item already expired removes an older local item (and
 *   leaves an expiry guard).
 * - a change whose version (or touch version) the clock does not accept
 *   (not below 2**53, or more than an hour ahead of this node's wall clock:
 *   {@linkcode HybridClock.accepts}) is refused, and the clock does not
 *   follow it: such a version would outrank every later write of the key
 *   (or, for a flush or tombstone, every later write at all). So is a
 *   flush_all whose time is past int32 unix seconds.
 * @module
 */

import { decodeAscii } from "../protocol/mod.ts";
import { ITEM_KEY_BINARY, ITEM_STALE, ITEM_TOKEN_SENT } from "../server/mod.ts";
import type { Store } from "../store/mod.ts";
import { BIT_BINARY_KEY, BIT_STALE, BIT_WIN_SENT, Frame, type FrameParser } from "./stream.ts";
import { type HybridClock, versionAt } from "./versions.ts";

/** Outcome of applying one change. */
export const Applied = {
  /** The local state changed. */
  CHANGED: 0,
  /** Nothing to do: the local state is as new or newer. */
  IGNORED: 1,
  /** The item could not be stored (memory or size): the older local copy was dropped. */
  FAILED: 2,
  /** Refused: its version is out of range or too far ahead (see the module rules). */
  REJECTED: 3,
} as const;

/** Item bits of the store that travel with an item (stale, win token sent, binary key). */
export function wireBits(userBits: number): number {
  return ((userBits & ITEM_STALE) ? BIT_STALE : 0) |
    ((userBits & ITEM_TOKEN_SENT) ? BIT_WIN_SENT : 0) |
    ((userBits & ITEM_KEY_BINARY) ? BIT_BINARY_KEY : 0);
}

function storeBits(bits: number): number {
  return ((bits & BIT_STALE) ? ITEM_STALE : 0) | ((bits & BIT_WIN_SENT) ? ITEM_TOKEN_SENT : 0) |
    ((bits & BIT_BINARY_KEY) ? ITEM_KEY_BINARY : 0);
}

/** The clock the merge needs: the server's (clock seconds, and unix time of second 0). */
export interface MergeClock {
  /** Current clock seconds. */
  now(): number;
  /** Unix seconds at clock 0. */
  readonly processStartUnix: number;
}

/** A delayed flush_all not in effect yet: its epoch, and when it takes effect (clock seconds). */
export interface PendingFlush {
  /** Items with a version below it die. */
  epoch: number;
  /** Clock second it takes effect. */
  atLocal: number;
}

/** Delayed flushes pending at once, at most. */
const MAX_PENDING = 1024;

/** Versioned merge of remote changes into the local store. */
export class Merger {
  /** Deleted keys (one char per byte) → version of the delete; oldest first, bounded. */
  readonly tombstones: Map<string, number> = new Map();
  /**
   * Keys whose item expired here (or arrived expired) → that item's
   * version; oldest first, bounded as the tombstones.
   */
  readonly expiries: Map<string, number> = new Map();
  /** Recently touched keys → version of the touch; oldest first, bounded. */
  readonly touches: Map<string, number> = new Map();
  /** Items of a version below this were flushed. */
  flushEpoch = 0;
  /** The item an {@linkcode applyItem} left for its key (-1: none). */
  handle: number = -1;
  /**
   * After {@linkcode applyFrame}: the change taught this node something (the
   * store, a tombstone or the flush epoch changed). A group forwards only
   * such changes, so a change echoed back is dropped and flooding ends.
   */
  fresh = false;
  /** Versions of delayed flushes seen (bounded): their echoes are not fresh. */
  #delayed: Map<string, number> = new Map();
  /**
   * Delayed flushes not in effect yet, by time (clock seconds `atLocal`),
   * at most {@linkcode MAX_PENDING}: each runs at its second, whatever order
   * they arrive in (see applyFlush). The store's one slot holds the first.
   */
  #pending: PendingFlush[] = [];
  /** The delayed flush the store's slot holds (it drops lazily once due), or null. */
  #inStore: PendingFlush | null = null;
  /** Hands the store's slot on when the first pending flush is due and others wait. */
  #timer: ReturnType<typeof setTimeout> | undefined;
  #store: Store;
  #clock: MergeClock;
  #hlc: HybridClock;
  #tombstoneLimit: number;

  /** Merge into `store`; at most `tombstoneLimit` tombstones are kept. */
  constructor(store: Store, clock: MergeClock, hlc: HybridClock, tombstoneLimit: number) {
    this.#store = store;
    this.#clock = clock;
    this.#hlc = hlc;
    this.#tombstoneLimit = Math.max(1024, tombstoneLimit);
  }

  /** The active flush epoch (a delayed flush becomes active when its time comes). */
  epoch(): number {
    this.#settle(this.#clock.now());
    return this.flushEpoch;
  }

  /**
   * The delayed flush_all not in effect yet that takes effect last (clock
   * seconds `atLocal`), for a warm restart's image (it holds one).
   */
  get pendingFlush(): PendingFlush | null {
    const p = this.#pending.at(-1);
    return p === undefined ? null : { ...p };
  }

  /** Every delayed flush_all not in effect yet, first due first (a full copy sends them again). */
  get pendingFlushes(): PendingFlush[] {
    return this.#pending.map((p) => ({ ...p }));
  }

  /** Pending flushes whose second came take effect; the store's slot goes to the next one. */
  #settle(now: number): void {
    let last: PendingFlush | undefined;
    while (this.#pending.length > 0 && this.#pending[0].atLocal <= now) {
      last = this.#pending.shift()!;
      if (last.epoch > this.flushEpoch) this.#setEpoch(last.epoch);
    }
    // The next one, or the last that ran (several can fall due together).
    const next = last === undefined ? undefined : this.#pending[0] ?? last;
    if (next !== undefined && next !== this.#inStore) this.#install(next);
    this.#schedule();
  }

  /**
   * Give the store's one delayed-flush slot to `p`. The flush it held, if
   * due, killed items lazily: they are unlinked first, or they came back
   * (on each node those that nobody had read since, so nodes differed).
   */
  #install(p: PendingFlush): void {
    const held = this.#inStore;
    if (held !== null && held !== p && held.atLocal <= this.#clock.now()) {
      this.dropOlder(held.epoch);
    }
    this.#store.flushBefore(p.atLocal, p.epoch);
    this.#inStore = p;
  }

  /** Settle again once the first of several pending flushes is due (the store holds only it). */
  #schedule(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    if (this.#pending.length < 2) return;
    const due = (this.#clock.processStartUnix + this.#pending[0].atLocal) * 1000 - Date.now();
    const timer = setTimeout(() => {
      this.#timer = undefined;
      this.epoch();
    }, Math.max(20, due + 5));
    Deno.unrefTimer(timer);
    this.#timer = timer;
  }

  /** Add a delayed flush to the pending ones (none that is there already or says nothing new). */
  #addPending(p: PendingFlush): void {
    if (p.epoch <= this.flushEpoch) return;
    const list = this.#pending;
    if (list.some((q) => q.epoch === p.epoch && q.atLocal === p.atLocal)) return;
    let i = list.length;
    while (
      i > 0 &&
      (list[i - 1].atLocal > p.atLocal ||
        (list[i - 1].atLocal === p.atLocal && list[i - 1].epoch > p.epoch))
    ) i--;
    list.splice(i, 0, { ...p });
    // Bounded: past it the one due last goes (only a client flooding distinct delays gets there).
    if (list.length > MAX_PENDING) list.pop();
  }

  /**
   * Take over what a stopped process of this node knew (a warm restart,
   * its clock origin resumed): flush epoch, a delayed flush, tombstones,
   * touches and expiry guards, oldest first.
   */
  restore(
    flushEpoch: number,
    pending: { epoch: number; atLocal: number } | null,
    tombstones: Iterable<[string, number]>,
    touches: Iterable<[string, number]>,
    expiries: Iterable<[string, number]> = [],
  ): void {
    this.flushEpoch = Math.max(this.flushEpoch, flushEpoch);
    if (pending !== null) this.#addPending(pending);
    for (const [k, v] of tombstones) if (v >= this.flushEpoch) this.tombstones.set(k, v);
    for (const [k, v] of touches) this.touches.set(k, v);
    for (const [k, v] of expiries) if (v >= this.flushEpoch) this.expiries.set(k, v);
    // This process may keep fewer: the oldest go.
    for (const map of [this.tombstones, this.touches, this.expiries]) {
      for (const k of map.keys()) {
        if (map.size <= this.#tombstoneLimit) break;
        map.delete(k);
      }
    }
  }

  /**
   * Apply an incoming item: key src[ks, ke), value buf[ds, de), flags,
   * unix expiry (0 = never), version, wire bits, touch version. Without a
   * local item, one of a version up to `floor` is refused: a full copy's
   * items this node already had (and so removed since).
   */
  applyItem(
    key: Uint8Array,
    ks: number,
    ke: number,
    value: Uint8Array,
    ds: number,
    de: number,
    flags: number,
    expUnix: number,
    version: number,
    bits: number,
    touch: number,
    floor = 0,
  ): number {
    const store = this.#store;
    const hlc = this.#hlc;
    if (!hlc.accepts(version) || (touch !== 0 && !hlc.accepts(touch))) return Applied.REJECTED;
    hlc.observe(Math.max(version, touch));
    const old = store.find(key, ks, ke);
    this.handle = old;
    let name = ""; // the key as a map key, decoded at most once (keys are never empty)
    if (old >= 0) {
      const local = store.cas(old);
      if (version < local) return Applied.IGNORED;
      if (version === local) {
        const order = compareContent(store, old, value, ds, de, flags);
        if (order === 0) return this.#touch(old, key, ks, ke, expUnix, version, bits, touch);
        if (order > 0) return Applied.IGNORED;
      }
    } else {
      if ((floor > 0 && version <= floor) || version < this.epoch()) return Applied.IGNORED;
      if (this.tombstones.size > 0) {
        name = decodeAscii(key, ks, ke);
        const t = this.tombstones.get(name);
        if (t !== undefined) {
          if (t >= version) return Applied.IGNORED;
          this.tombstones.delete(name);
        }
      }
      if (this.expiries.size > 0) {
        name ||= decodeAscii(key, ks, ke);
        const e = this.expiries.get(name);
        if (e !== undefined) {
          // As if the item were still here: an older write loses, a newer one wins (though
          // older than the expired item's touch: its writer ignored that touch), and the
          // item's own write only with a touch newer than its last (made before it expired).
          if (version < e) return Applied.IGNORED;
          if (version === e && touch <= (this.touches.get(name) ?? 0)) return Applied.IGNORED;
          this.expiries.delete(name);
        }
      }
    }
    const exp = this.#localExptime(expUnix);
    if (exp !== 0 && exp <= this.#clock.now()) {
      this.handle = -1;
      if (old >= 0) store.unlink(old);
      if (touch > 0) {
        name ||= decodeAscii(key, ks, ke);
        if (touch > (this.touches.get(name) ?? 0)) this.touched(name, touch);
      }
      this.expired(key, ks, ke, version);
      return old >= 0 ? Applied.CHANGED : Applied.IGNORED;
    }
    if (this.touches.size > 0) this.touches.delete(name || decodeAscii(key, ks, ke));
    const h = store.alloc(key, ks, ke, flags, exp, de - ds);
    this.handle = h;
    if (h < 0) {
      if (old >= 0) store.unlink(old);
      return Applied.FAILED;
    }
    store.buffer(h).set(value.subarray(ds, de), store.valueOffset(h));
    store.setUserBits(h, storeBits(bits));
    store.link(h, version);
    return Applied.CHANGED;
  }

  /**
   * The same write arrived with another expiry: the later touch wins
   * (a touch version, else the item version); equal ones keep the longer life.
   */
  #touch(
    h: number,
    key: Uint8Array,
    ks: number,
    ke: number,
    expUnix: number,
    version: number,
    bits: number,
    touch: number,
  ): number {
    const store = this.#store;
    const exp = this.#localExptime(expUnix);
    // Within one version the win token only grows: once either node handed out W, both say Z.
    const won = (storeBits(bits) & ~store.userBits(h) & ITEM_TOKEN_SENT) !== 0;
    if (won) store.setUserBits(h, store.userBits(h) | ITEM_TOKEN_SENT);
    const same = won ? Applied.CHANGED : Applied.IGNORED;
    const ub = (store.userBits(h) & ~ITEM_STALE) | (storeBits(bits) & ITEM_STALE);
    if (store.exptime(h) === exp && store.userBits(h) === ub) return same;
    const name = decodeAscii(key, ks, ke);
    const local = Math.max(this.touches.get(name) ?? 0, version);
    const incoming = Math.max(touch, version);
    if (incoming < local) return same;
    if (incoming === local && !longer(exp, store.exptime(h))) return same;
    if (incoming > version) this.touched(name, incoming);
    if (exp !== 0 && exp <= this.#clock.now()) {
      this.handle = -1;
      store.unlink(h);
      // The guard, as for an item that expires here: a late copy of the write stays out.
      this.expired(key, ks, ke, version);
      return Applied.CHANGED;
    }
    store.setExptime(h, exp);
    store.setUserBits(h, ub);
    return Applied.CHANGED;
  }

  /**
   * The item of version `version` for key src[ks, ke) expired here: a
   * change of the key older than that version arriving later is refused,
   * and that version itself unless its touch is newer than the last one
   * recorded (`touches`). The guard holds the item's version, not its
   * touch's: a newer write the touch did not see still comes in.
   */
  expired(key: Uint8Array, ks: number, ke: number, version: number): void {
    const name = decodeAscii(key, ks, ke);
    if (version < this.flushEpoch) return;
    const e = this.expiries.get(name);
    if (e !== undefined) {
      if (e >= version) return;
      this.expiries.delete(name); // re-insert: newest last
    }
    this.expiries.set(name, version);
    trim(this.expiries, this.#tombstoneLimit);
  }

  /** Record that key `name` (one char per byte) was touched at version `touch`. */
  touched(name: string, touch: number): void {
    this.touches.delete(name); // re-insert: newest last
    this.touches.set(name, touch);
    trim(this.touches, this.#tombstoneLimit);
  }

  /** Apply the change frame (S, CS, D, CD or F) that `p` just parsed (`floor`: see applyItem). */
  applyFrame(p: FrameParser, floor = 0): number {
    this.fresh = false;
    let result: number;
    switch (p.kind) {
      case Frame.ITEM:
      case Frame.COPY_ITEM:
        result = this.applyItem(
          p.keyBuf,
          p.keyStart,
          p.keyEnd,
          p.buf,
          p.dataStart,
          p.dataEnd,
          p.flags,
          p.exp,
          p.version,
          p.bits,
          p.touch,
          floor,
        );
        this.fresh = result === Applied.CHANGED;
        return result;
      case Frame.DELETE:
      case Frame.COPY_DELETE:
        return this.applyDelete(p.keyBuf, p.keyStart, p.keyEnd, p.version);
      default:
        result = this.applyFlush(p.version, p.exp, false);
        this.fresh = result === Applied.CHANGED && this.#firstSeen(p.version, p.exp);
        return result;
    }
  }

  /** A flush of `version` at `atUnix` not seen before (an immediate one's echo is IGNORED anyway). */
  #firstSeen(version: number, atUnix: number): boolean {
    const key = `${version}:${atUnix}`;
    if (this.#delayed.has(key)) return false;
    this.#delayed.set(key, version);
    trim(this.#delayed, 1024);
    return true;
  }

  /** Apply an incoming delete of key src[ks, ke) made at `version`. */
  applyDelete(key: Uint8Array, ks: number, ke: number, version: number): number {
    const store = this.#store;
    this.fresh = false;
    if (!this.#hlc.observe(version)) return Applied.REJECTED;
    const h = store.find(key, ks, ke);
    if (h >= 0) {
      if (store.cas(h) > version) return Applied.IGNORED;
      store.unlink(h);
    }
    this.fresh = this.remember(key, ks, ke, version) || h >= 0;
    return h >= 0 ? Applied.CHANGED : Applied.IGNORED;
  }

  /** Record a tombstone for key src[ks, ke) (a local or remote delete); false when it says nothing new. */
  remember(key: Uint8Array, ks: number, ke: number, version: number): boolean {
    if (version < this.flushEpoch) return false;
    const name = decodeAscii(key, ks, ke);
    const t = this.tombstones.get(name);
    if (t !== undefined) {
      if (t >= version) return false;
      this.tombstones.delete(name); // re-insert: newest last
    }
    this.tombstones.set(name, version);
    trim(this.tombstones, this.#tombstoneLimit);
    return true;
  }

  /**
   * A flush_all made at `version` that takes effect at unix second `atUnix`:
   * every item older than it goes (now, or lazily when the time comes).
   * `local` = made on this node (for an immediate one the engine unlinked
   * every item already); `late` = by a serve thread other than this one,
   * read from the change ring: this thread may have merged older items from
   * the peer since that thread unlinked every item.
   */
  applyFlush(version: number, atUnix: number, local: boolean, late = false): number {
    // A flush time past int32 unix seconds is none a flush_all can name (and would wrap the store's).
    if (!local && (!this.#hlc.accepts(version) || atUnix > 0x7fffffff)) return Applied.REJECTED;
    this.#hlc.observe(version);
    const epoch = flushEpochOf(version, atUnix);
    const atLocal = atUnix - this.#clock.processStartUnix;
    const now = this.#clock.now();
    this.#settle(now);
    // A delayed flush drops by version, not by when this node stored an item (a local one too:
    // the engine leaves the store's slot to the flushes by version, and cancels or replaces
    // none as memcached's single node does): a write that reached a node late, or in the
    // flush's second but after this node's clock second began, dies there exactly as on its
    // writer. Under -C too, an immediate one orders the writes of its second by version.
    if (atLocal > now) {
      // Every delayed flush runs at its second, whatever order they arrive in. One replacing
      // another (memcached's rule on one node) made the outcome hang on whether the replaced
      // one had run yet on each node, and brought back what it had dropped.
      this.#addPending({ epoch, atLocal });
      if (this.#pending.length > 0) this.#install(this.#pending[0]);
      this.#schedule();
      return Applied.CHANGED;
    }
    if (epoch <= this.flushEpoch) return Applied.IGNORED;
    // A delayed flush whose second passed before it got here: the slot drops by version from
    // now on, unless pending ones hold it; then its items go now.
    const slotTaken = atUnix > 0 && this.#pending.length > 0;
    if (atUnix > 0 && !slotTaken) this.#install({ epoch, atLocal });
    // Older items go now: for a peer's flush; for one whose slot pending ones hold; for a
    // serve thread's, older ones merged from the peer since it ran (the peer drops them too).
    if (!local || slotTaken || late) this.dropOlder(epoch);
    this.#setEpoch(epoch);
    return Applied.CHANGED;
  }

  /**
   * Raise the flush epoch to `epoch` (a full copy's), dropping older local
   * items. False (and nothing done) when the clock does not accept it.
   */
  adoptEpoch(epoch: number): boolean {
    if (!this.#hlc.accepts(epoch)) return false;
    if (epoch <= this.flushEpoch) return true;
    this.dropOlder(epoch);
    this.#setEpoch(epoch);
    return true;
  }

  /**
   * Unlink every item with a version below `epoch` (also one a delayed flush
   * in effect killed, not unlinked yet); returns how many.
   */
  dropOlder(epoch: number): number {
    const store = this.#store;
    let cursor = 0, dropped = 0;
    do {
      cursor = store.scan(cursor, 4096, (h) => {
        if (store.cas(h) < epoch) {
          store.unlink(h);
          dropped++;
        }
      }, true);
    } while (cursor >= 0);
    return dropped;
  }

  #setEpoch(epoch: number): void {
    this.flushEpoch = epoch;
    // Tombstones below the epoch say nothing the epoch does not.
    for (const [k, v] of this.tombstones) if (v < epoch) this.tombstones.delete(k);
    for (const [k, v] of this.expiries) if (v < epoch) this.expiries.delete(k);
  }

  #localExptime(expUnix: number): number {
    if (expUnix === 0) return 0;
    const t = expUnix - this.#clock.processStartUnix;
    // 0 means never: an expiry at or before clock 0 is "already expired" (1 or -1).
    return t >= 1 ? Math.min(t, 0x7fffffff) : -1;
  }
}

/**
 * The unix time a flush frame names: 0 for one that ran now, so that every
 * receiver drops exactly the items older than its version, whatever its own
 * clock's second says (a receiver a second behind would otherwise take it
 * for a delayed flush and, when that second came, drop the newer items it
 * stored meanwhile, which the other nodes keep).
 */
export function flushTime(unixNow: number, delaySeconds: number): number {
  return delaySeconds > 0 ? unixNow + delaySeconds : 0;
}

/**
 * The epoch of a flush_all made at `version` for unix second `atUnix` (0:
 * now): a delayed one drops what was written up to the end of its second,
 * as memcached drops what is stored in the second the flush takes effect.
 */
export function flushEpochOf(version: number, atUnix: number): number {
  return atUnix > 0 ? Math.max(version, versionAt((atUnix + 1) * 1000)) : version;
}

/** Keep a map at most `limit` entries: drop the oldest in a batch, so this is not paid every time. */
function trim(map: Map<string, number>, limit: number): void {
  if (map.size <= limit) return;
  let drop = Math.ceil(limit / 16);
  for (const k of map.keys()) {
    if (drop-- <= 0) break;
    map.delete(k);
  }
}

/** Does clock exptime a outlive b (0 = never)? */
function longer(a: number, b: number): boolean {
  return b !== 0 && (a === 0 || a > b);
}

/** Order of the local item against incoming (value, flags): <0, 0, >0. */
function compareContent(
  store: Store,
  h: number,
  value: Uint8Array,
  ds: number,
  de: number,
  flags: number,
): number {
  const buf = store.buffer(h), vo = store.valueOffset(h), vl = store.valueLength(h);
  const n = Math.min(vl, de - ds);
  for (let i = 0; i < n; i++) {
    const d = buf[vo + i] - value[ds + i];
    if (d !== 0) return d;
  }
  if (vl !== de - ds) return vl - (de - ds);
  return store.flags(h) - flags;
}

/**
 * Introspection commands that read the store in memcached's formats:
 * `stats cachedump <class> <limit>` and the class list of
 * `lru_crawler metadump <classes>`.
 * @module
 */

import { parseU32, REPLY, type Request, type Writer } from "../protocol/mod.ts";
import type { Store } from "../store/mod.ts";
import { ITEM_KEY_BINARY } from "./items.ts";

/** memcached's MAX_NUMBER_OF_SLAB_CLASSES: class ids are below it. */
const MAX_CLASSES = 64;
/** memcached caps a cachedump reply at 2 MB. */
const CACHEDUMP_LIMIT = 2 * 1048576;

/**
 * `stats cachedump <class> <limit>` (tokens 2 and 3): one
 * `ITEM <key> [<bytes> b; <exptime> s]` line per item of the class, most
 * recently used first, binary keys left out, then END.
 */
export function cachedump(req: Request, out: Writer, store: Store, startUnix: number): void {
  if (req.ntokens < 4) {
    out.bytes(REPLY.BAD_STATS);
    return;
  }
  const id = parseU32(req.buf, req.tokStart[2], req.tokEnd[2]);
  const limit = id < 0 ? -1 : parseU32(req.buf, req.tokStart[3], req.tokEnd[3]);
  if (limit < 0) {
    out.bytes(REPLY.BAD_FORMAT);
    return;
  }
  if (id >= MAX_CLASSES) {
    out.bytes(REPLY.BAD_SLAB_ID);
    return;
  }
  const begin = out.length;
  let shown = 0;
  store.lruItems(id, (h) => {
    if (limit !== 0 && shown >= limit) return false;
    if (store.userBits(h) & ITEM_KEY_BINARY) return true;
    const mark = out.length;
    const ko = store.keyOffset(h);
    out.text("ITEM ");
    out.bytes(store.buffer(h), ko, ko + store.keyLength(h));
    out.text(" [");
    out.uint(store.valueLength(h));
    out.text(" b; ");
    const exp = store.exptime(h);
    out.uint(exp === 0 ? 0 : exp + startUnix);
    out.text(" s]\r\n");
    if (out.length - begin + 6 > CACHEDUMP_LIMIT) {
      out.length = mark;
      return false;
    }
    shown++;
    return true;
  });
  out.bytes(REPLY.END);
}

/**
 * The classes `lru_crawler metadump <arg>` walks: `all` / `hash` (every
 * class) or a comma-separated list of ids 1-63. Returns a flag per class id,
 * or null for memcached's BADCLASS. No flag set means NOTSTARTED.
 */
export function metadumpClasses(req: Request, i: number): Uint8Array | null {
  const classes = new Uint8Array(MAX_CLASSES);
  if (req.tokenIs(i, "all") || req.tokenIs(i, "hash")) return classes.fill(1);
  const buf = req.buf, end = req.tokEnd[i];
  // strtok_r(",") : empty pieces are skipped.
  for (let s = req.tokStart[i]; s < end;) {
    let e = s;
    while (e < end && buf[e] !== 44) e++;
    if (e > s) {
      const id = parseU32(buf, s, e);
      if (id < 1 || id >= MAX_CLASSES) return null;
      classes[id] = 1;
    }
    s = e + 1;
  }
  return classes;
}

/**
 * memcached's run-time tuning commands, with its replies and number checks
 * (safe_strtoul / safe_strtol / safe_strtod): `cache_memlimit`, `slabs
 * automove|reassign`, `lru tune|mode|temp_ttl` and the `lru_crawler`
 * settings (`sleep`, `tocrawl`, `crawl`, `enable`, `disable`). memrep has no
 * slab rebalancer, LRU segments or crawler thread: the settings are kept and
 * shown in `stats settings` as memcached shows them; `cache_memlimit` really
 * changes the store's limit.
 * @module
 */

import {
  decodeAscii,
  parseI32,
  parseU32,
  REPLY,
  type Request,
  type Writer,
} from "../protocol/mod.ts";
import type { Store } from "../store/mod.ts";
import { defaultStartupSettings, type StartupSettings } from "./engine_options.ts";

/** memcached's MAX_NUMBER_OF_SLAB_CLASSES (class ids are below it). */
const MAX_CLASSES = 64;

/** The settings these commands change (at first as the startup flags set them). */
export class Tunables {
  /** The startup settings, as these commands have since changed them. */
  readonly set: StartupSettings;
  /**
   * memcached's largest slab class id for the same -n/-f (its power_largest;
   * memrep's own classes differ, its item header being smaller).
   */
  readonly largestClass: number;

  /** Settings for a server started with -n `minChunk`, -f `factor` and the -o suboptions in `startup`. */
  constructor(minChunk = 48, factor = 1.25, startup: StartupSettings = defaultStartupSettings()) {
    this.largestClass = memcachedLargestClass(minChunk, factor);
    this.set = { ...startup };
  }

  /** Lines for `stats settings`, in memcached's order and formats. */
  settingsLines(): Array<[string, string | number]> {
    return [
      ["slab_reassign", this.set.slabReassign ? "yes" : "no"],
      ["slab_automove", this.set.slabAutomove],
      ["slab_automove_ratio", this.set.slabAutomoveRatio.toFixed(2)],
      ["lru_crawler", this.set.lruCrawler ? "yes" : "no"],
      ["lru_crawler_sleep", this.set.lruCrawlerSleep],
      ["lru_crawler_tocrawl", this.set.lruCrawlerTocrawl],
      ["lru_segmented", this.set.lruSegmented ? "yes" : "no"],
      ["hot_lru_pct", this.set.hotLruPct],
      ["warm_lru_pct", this.set.warmLruPct],
      ["hot_max_factor", this.set.hotMaxFactor.toFixed(2)],
      ["warm_max_factor", this.set.warmMaxFactor.toFixed(2)],
      ["temp_lru", this.set.tempLru ? "yes" : "no"],
      ["temporary_ttl", this.set.temporaryTtl],
    ];
  }
}

/**
 * The class count memcached's slabs_init makes: sizes from its 48-byte item
 * header plus -n, times -f (8-aligned) while under half its 512 KB chunk
 * maximum over the factor, then one class of the maximum.
 */
function memcachedLargestClass(minChunk: number, factor: number): number {
  const chunkMax = 524288;
  let size = 48 + minChunk;
  let i = 0;
  while (++i < MAX_CLASSES - 1) {
    if (size >= chunkMax / factor) break;
    if (size % 8) size += 8 - (size % 8);
    size *= factor;
  }
  return i;
}

/** memcached's ntokens: the tokens plus its empty terminal one. */
function ntokens(req: Request): number {
  return req.ntokens + 1;
}

/** set_noreply_maybe: a last token `noreply` silences the reply. */
function noreply(req: Request): boolean {
  return req.ntokens > 1 && req.tokenIs(req.ntokens - 1, "noreply");
}

function u32(req: Request, i: number): number {
  return parseU32(req.buf, req.tokStart[i], req.tokEnd[i]);
}

/**
 * safe_strtod: strtod must read something and stop at the end or white
 * space. Returns NaN when invalid.
 */
function strtod(req: Request, i: number): number {
  const s = decodeAscii(req.buf, req.tokStart[i], req.tokEnd[i]);
  const hex = /^([+-]?)0x([0-9a-f]+)$/i.exec(s);
  if (hex) return (hex[1] === "-" ? -1 : 1) * parseInt(hex[2], 16);
  // strtod's other forms: decimal with optional exponent, inf, nan (then 0: never NaN here).
  const m = /^[+-]?(?:(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|inf(?:inity)?|nan)$/i.exec(s);
  if (!m) return NaN;
  const v = Number(s.replace(/^([+-]?)inf(inity)?$/i, "$1Infinity"));
  return Number.isNaN(v) ? 0 : v;
}

function line(out: Writer, text: string): void {
  out.text(text + "\r\n");
}

/** `cache_memlimit <megabytes> [noreply]` (process_memlimit_command). */
export function cacheMemlimit(req: Request, out: Writer, store: Store): void {
  const quiet = noreply(req);
  const mark = out.length;
  const mb = u32(req, 1);
  if (mb < 0) out.bytes(REPLY.ERROR);
  else if (mb < 8) line(out, "MEMLIMIT_TOO_SMALL cannot set maxbytes to less than 8m");
  else if (mb > 1000000000) line(out, "MEMLIMIT_ADJUST_FAILED input value is megabytes not bytes");
  else if (store.setMemoryLimit(mb * 1048576)) out.bytes(REPLY.OK);
  else line(out, "MEMLIMIT_ADJUST_FAILED out of bounds or unable to adjust");
  if (quiet) out.length = mark;
}

/** `slabs reassign <src> <dst>` and `slabs automove <0|1|2>|ratio <r>`. */
export function slabsCommand(req: Request, out: Writer, t: Tunables, store: Store): void {
  const nt = ntokens(req);
  if (nt === 5 && req.tokenIs(1, "reassign")) {
    const src = parseI32(req.buf, req.tokStart[2], req.tokEnd[2]);
    const dst = parseI32(req.buf, req.tokStart[3], req.tokEnd[3]);
    if (src === null || dst === null) {
      out.bytes(REPLY.BAD_FORMAT);
      return;
    }
    line(out, reassign(src, dst, store, t));
    return;
  }
  if (nt >= 4 && req.tokenIs(1, "automove")) {
    const quiet = noreply(req);
    const mark = out.length;
    automove(req, out, t, nt);
    if (quiet) out.length = mark;
    return;
  }
  out.bytes(REPLY.ERROR);
}

/**
 * slabs_reassign's answers. memrep moves no pages between classes (its
 * classes draw pages from one pool as they need them), so a request
 * memcached would start is answered `OK` and changes nothing.
 */
function reassign(src: number, dst: number, store: Store, t: Tunables): string {
  if (src === dst) return "SAME src and dst class are identical";
  const largest = t.largestClass;
  if (src === -1) {
    // memcached's slabs_reassign_pick_any: some other class with a spare page.
    src = -1;
    for (let c = 1; c <= largest && src === -1; c++) {
      if (c !== dst && store.classPages(c) > 1) src = c;
    }
  }
  // Class 0 is memcached's global page pool (memrep's pool has no pages of its own).
  if (src < 0 || src > largest || dst < 0 || dst > largest) {
    return "BADCLASS invalid src or dst class id";
  }
  if (store.classPages(src) < 2) return "NOSPARE source class has no spare pages";
  return "OK";
}

function automove(req: Request, out: Writer, t: Tunables, nt: number): void {
  if (req.tokenIs(2, "ratio")) {
    const r = nt < 5 ? NaN : strtod(req, 3);
    if (Number.isNaN(r)) {
      out.bytes(REPLY.ERROR);
      return;
    }
    t.set.slabAutomoveRatio = r;
    out.bytes(REPLY.OK);
    return;
  }
  const level = u32(req, 2);
  if (level < 0) {
    out.bytes(REPLY.BAD_FORMAT);
    return;
  }
  if (level > 2) {
    out.bytes(REPLY.ERROR);
    return;
  }
  t.set.slabAutomove = level;
  out.bytes(REPLY.OK);
}

/** `lru tune <hot%> <warm%> <hot factor> <warm factor>`, `lru mode`, `lru temp_ttl`. */
export function lruCommand(req: Request, out: Writer, t: Tunables): void {
  const nt = ntokens(req);
  const quiet = noreply(req);
  const mark = out.length;
  if (nt >= 7 && req.tokenIs(1, "tune")) {
    const hot = u32(req, 2), warm = u32(req, 3);
    const hotFactor = strtod(req, 4), factor = strtod(req, 5);
    if (hot < 0 || warm < 0 || Number.isNaN(hotFactor) || Number.isNaN(factor)) {
      out.bytes(REPLY.ERROR);
    } else if (hot + warm > 80) line(out, "ERROR hot and warm pcts must not exceed 80");
    else if (factor <= 0 || hotFactor <= 0) {
      line(out, "ERROR hot/warm age factors must be greater than 0");
    } else {
      t.set.hotLruPct = hot;
      t.set.warmLruPct = warm;
      t.set.hotMaxFactor = hotFactor;
      t.set.warmMaxFactor = factor;
      out.bytes(REPLY.OK);
    }
  } else if (nt >= 4 && req.tokenIs(1, "mode")) {
    if (req.tokenIs(2, "flat") || req.tokenIs(2, "segmented")) {
      t.set.lruSegmented = req.tokenIs(2, "segmented");
      out.bytes(REPLY.OK);
    } else out.bytes(REPLY.ERROR);
  } else if (nt >= 4 && req.tokenIs(1, "temp_ttl")) {
    const ttl = parseI32(req.buf, req.tokStart[2], req.tokEnd[2]);
    if (ttl === null) out.bytes(REPLY.ERROR);
    else {
      t.set.tempLru = ttl >= 0;
      if (ttl >= 0) t.set.temporaryTtl = ttl;
      out.bytes(REPLY.OK);
    }
  } else out.bytes(REPLY.ERROR);
  if (quiet) out.length = mark;
}

/**
 * The `lru_crawler` subcommands other than `metadump`: `crawl <classes>`
 * (`crawlClasses` checks the list and reclaims the expired and flushed
 * items of those classes), `tocrawl <n>`, `sleep <us>`, `enable`,
 * `disable`.
 */
export function lruCrawlerSettings(
  req: Request,
  out: Writer,
  t: Tunables,
  crawlClasses: () => "ok" | "bad" | "none",
): void {
  const nt = ntokens(req);
  if (nt === 4 && req.tokenIs(1, "crawl")) {
    if (!t.set.lruCrawler) line(out, "CLIENT_ERROR lru crawler disabled");
    else if (req.tokenIs(2, "hash")) line(out, "ERROR an unknown error happened");
    else {
      const r = crawlClasses();
      if (r === "bad") line(out, "BADCLASS invalid class id");
      else if (r === "none") line(out, "NOTSTARTED no items to crawl");
      else out.bytes(REPLY.OK);
    }
  } else if (nt === 4 && req.tokenIs(1, "tocrawl")) {
    const n = u32(req, 2);
    if (n < 0) out.bytes(REPLY.BAD_FORMAT);
    else {
      t.set.lruCrawlerTocrawl = n;
      out.bytes(REPLY.OK);
    }
  } else if (nt === 4 && req.tokenIs(1, "sleep")) {
    const n = u32(req, 2);
    if (n < 0) out.bytes(REPLY.BAD_FORMAT);
    else if (n > 1000000) line(out, "CLIENT_ERROR sleep must be one second or less");
    else {
      t.set.lruCrawlerSleep = n;
      out.bytes(REPLY.OK);
    }
  } else if (nt === 3 && req.tokenIs(1, "enable")) {
    // As memcached: starting the crawler thread a second time fails.
    if (t.set.lruCrawler) line(out, "ERROR failed to start lru crawler thread");
    else {
      t.set.lruCrawler = true;
      out.bytes(REPLY.OK);
    }
  } else if (nt === 3 && req.tokenIs(1, "disable")) {
    t.set.lruCrawler = false;
    out.bytes(REPLY.OK);
  } else out.bytes(REPLY.ERROR);
}

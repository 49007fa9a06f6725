/**
 * memcached 1.6.18's own reading and checks of its numeric flags and `-o`
 * suboptions: the same C conversions (atoi, atof, strtoul) and the same
 * refusals, each a {@linkcode MemcachedUsageError} carrying memcached's message
 * (memrep exits with code 2 where memcached uses 1 or 64).
 * @module
 */

import { MemcachedUsageError } from "../errors.ts";
// The options face, not mod.ts: serve reads its flags before it loads the server.
import { defaultStartupSettings, type StartupSettings } from "../server/engine_options.ts";

/** What memcached makes of the numeric flags serve uses. */
export interface MemcachedNumbers {
  /** -m in bytes (memcached's size_t arithmetic: a negative -m is huge). */
  maxBytes: number;
  /** -c. */
  maxConnections: number;
  /** -t, or undefined when not given. */
  threads: number | undefined;
  /** -I in bytes. */
  itemSizeMax: number;
  /** -f. */
  factor: number;
  /** -n. */
  chunkSize: number;
  /** -R. */
  reqsPerEvent: number;
  /** -o idle_timeout (seconds, 0 = none). */
  idleTimeout: number;
  /** -o read_buf_mem_limit in bytes (0 = none). */
  readBufMemLimit: number;
  /** -o slab_chunk_max in bytes (524288 unless given; no_modern, no_chunked_items: 1048576). */
  slabChunkMax: number;
  /** What -C, -b and the -o suboptions set (`stats settings`). */
  startup: StartupSettings;
  /** Warnings memcached prints and goes on (-t over 64). */
  warnings: string[];
}

/** The raw texts of the flags, as given (undefined when absent). */
export interface MemcachedFlagTexts {
  /** -m. */
  m?: string;
  /** -c. */
  c?: string;
  /** -t. */
  t?: string;
  /** -I. */
  I?: string;
  /** -f. */
  f?: string;
  /** -n. */
  n?: string;
  /** -R. */
  R?: string;
  /** -b. */
  b?: string;
  /** -C given. */
  C?: boolean;
  /** -D. */
  D?: string;
  /** -N. */
  N?: string;
  /** Every -o, in order. */
  o: string[];
}

/** C's atoi (strtol, then truncated to int): leading blanks, sign, digits; 0 when none. */
export function atoi(text: string): number {
  const m = /^[ \t\n\v\f\r]*([+-]?\d+)/.exec(text);
  if (!m) return 0;
  let big = BigInt(m[1]);
  const max = (1n << 63n) - 1n;
  if (big > max) big = max;
  if (big < -max - 1n) big = -max - 1n;
  return Number(BigInt.asIntN(32, big));
}

/** C's atof for the forms flags use: the longest decimal prefix; 0 when none. */
export function atof(text: string): number {
  const m = /^[ \t\n\v\f\r]*([+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)/.exec(text);
  return m ? Number(m[1]) : 0;
}

/** memcached's safe_strtoul: digits (no sign below zero), then the end or a blank. */
function strtoul(text: string): number | null {
  const m = /^[ \t\n\v\f\r]*([+-]?)(\d+)(?:[ \t\n\v\f\r].*)?$/s.exec(text);
  if (!m) return null;
  const v = BigInt(m[2]);
  if (v >= 1n << 64n) return null;
  if (m[1] === "-" && v !== 0n) return null;
  return Number(BigInt.asUintN(32, v));
}

/** memcached's safe_strtol into an int32. */
function strtol(text: string): number | null {
  const m = /^[ \t\n\v\f\r]*([+-]?\d+)(?:[ \t\n\v\f\r].*)?$/s.exec(text);
  if (!m) return null;
  const v = BigInt(m[1]);
  if (v >= 1n << 63n || v < -(1n << 63n)) return null;
  return Number(BigInt.asIntN(32, v));
}

/** memcached's slab_page_size (no_modern and no_chunked_items set slab_chunk_max to it). */
const PAGE_SIZE = 1048576;

/** -I: a k/m suffix multiplies atoi of the rest (no g: `1g` is atoi 1). */
function itemSize(text: string): number {
  const unit = text.at(-1);
  if (unit === "k" || unit === "K") return atoi(text.slice(0, -1)) * 1024;
  if (unit === "m" || unit === "M") return atoi(text.slice(0, -1)) * 1048576;
  return atoi(text);
}

/** memcached's -o names (ext_* ones belong to extstore and are accepted too). */
const SUBOPTIONS = new Set(
  ("maxconns_fast hashpower no_hashexpand slab_reassign slab_automove slab_automove_ratio " +
    "slab_automove_window tail_repair_time hash_algorithm lru_crawler lru_crawler_sleep " +
    "lru_crawler_tocrawl lru_maintainer hot_lru_pct warm_lru_pct hot_max_factor warm_max_factor " +
    "temporary_ttl idle_timeout watcher_logbuf_size worker_logbuf_size slab_sizes slab_chunk_max " +
    "track_sizes no_inline_ascii_resp modern no_modern no_chunked_items no_slab_reassign " +
    "no_slab_automove no_maxconns_fast inline_ascii_resp no_lru_crawler no_lru_maintainer " +
    "no_drop_privileges drop_privileges resp_obj_mem_limit read_buf_mem_limit ssl_chain_cert " +
    "ssl_key ssl_verify_mode ssl_keyformat ssl_ciphers ssl_ca_cert ssl_wbuf_size " +
    "ssl_session_cache ssl_kernel_tls ssl_min_version " +
    "slab_automove_freeratio").split(" "),
);

/** Settings the -o checks read across suboptions. */
interface SubState {
  idleTimeout: number;
  readBufMemLimit: number;
  slabChunkMax: number;
  chunkMaxSet: boolean;
  /** Settings shown in `stats settings` (hot/warm pct checked together at the end). */
  set: StartupSettings;
  /** The LRU maintainer would start (temporary_ttl needs it). */
  maintainer: boolean;
}

/** One -o suboption (memcached's getsubopt switch); throws memcached's refusal. */
function suboption(token: string, st: SubState): void {
  const eq = token.indexOf("=");
  const name = eq < 0 ? token : token.slice(0, eq);
  const value = eq < 0 ? null : token.slice(eq + 1);
  if (!SUBOPTIONS.has(name) && !name.startsWith("ext_")) {
    throw new MemcachedUsageError(`Illegal suboption "${token}"`);
  }
  const set = st.set;
  const need = (missing: string): string => {
    if (value === null) throw new MemcachedUsageError(missing);
    return value;
  };
  switch (name) {
    case "hashpower": {
      const p = atoi(need("Missing numeric argument for hashpower"));
      if (p < 12) throw new MemcachedUsageError(`Initial hashtable multiplier of ${p} is too low`);
      if (p > 32) {
        throw new MemcachedUsageError(
          `Initial hashtable multiplier of ${p} is too high\n` +
            `Choose a value based on "STAT hash_power_level" from a running instance`,
        );
      }
      set.hashpowerInit = p;
      return;
    }
    case "maxconns_fast":
      set.maxconnsFast = true;
      return;
    case "no_maxconns_fast":
      set.maxconnsFast = false;
      return;
    case "slab_reassign":
      set.slabReassign = true;
      return;
    case "no_slab_reassign":
      set.slabReassign = false;
      return;
    case "slab_automove": {
      if (value === null) {
        set.slabAutomove = 1;
        return;
      }
      const a = atoi(value);
      if (a < 0 || a > 2) throw new MemcachedUsageError("slab_automove must be between 0 and 2");
      set.slabAutomove = a;
      return;
    }
    case "no_slab_automove":
      set.slabAutomove = 0;
      return;
    case "slab_automove_ratio": {
      const r = atof(need("Missing slab_automove_ratio argument"));
      if (r <= 0 || r > 1) throw new MemcachedUsageError("slab_automove_ratio must be > 0 and < 1");
      set.slabAutomoveRatio = r;
      return;
    }
    case "slab_automove_window": {
      const w = atoi(need("Missing slab_automove_window argument"));
      if (w < 3) throw new MemcachedUsageError("slab_automove_window must be > 2");
      set.slabAutomoveWindow = w;
      return;
    }
    case "tail_repair_time": {
      const t = atoi(need("Missing numeric argument for tail_repair_time"));
      if (t < 10) {
        throw new MemcachedUsageError("Cannot set tail_repair_time to less than 10 seconds");
      }
      set.tailRepairTime = t;
      return;
    }
    case "hash_algorithm": {
      const h = need("Missing hash_algorithm argument");
      if (h !== "jenkins" && h !== "murmur3" && h !== "xxh3") {
        throw new MemcachedUsageError("Unknown hash_algorithm option (jenkins, murmur3, xxh3)");
      }
      set.hashAlgorithm = h;
      return;
    }
    case "lru_crawler":
      set.lruCrawler = true;
      return;
    case "no_lru_crawler":
      set.lruCrawler = false;
      return;
    case "lru_crawler_sleep": {
      const s = atoi(need("Missing lru_crawler_sleep value"));
      if (s > 1000000 || s < 0) {
        throw new MemcachedUsageError("LRU crawler sleep must be between 0 and 1 second");
      }
      set.lruCrawlerSleep = s;
      return;
    }
    case "lru_crawler_tocrawl": {
      const n = strtoul(need("Missing lru_crawler_tocrawl value"));
      if (n === null) {
        throw new MemcachedUsageError("lru_crawler_tocrawl takes a numeric 32bit value");
      }
      set.lruCrawlerTocrawl = n;
      return;
    }
    case "lru_maintainer":
      st.maintainer = true;
      set.lruSegmented = true;
      return;
    case "no_lru_maintainer":
      st.maintainer = false;
      set.lruSegmented = false;
      return;
    case "hot_lru_pct":
    case "warm_lru_pct": {
      const pct = atoi(need(`Missing ${name} argument`));
      if (pct < 1 || pct >= 80) throw new MemcachedUsageError(`${name} must be > 1 and < 80`);
      if (name === "hot_lru_pct") set.hotLruPct = pct;
      else set.warmLruPct = pct;
      return;
    }
    case "hot_max_factor":
    case "warm_max_factor": {
      const f = atof(need(`Missing ${name} argument`));
      if (f <= 0) throw new MemcachedUsageError(`${name} must be > 0`);
      if (name === "hot_max_factor") set.hotMaxFactor = f;
      else set.warmMaxFactor = f;
      return;
    }
    case "temporary_ttl":
      set.temporaryTtl = atoi(need("Missing temporary_ttl argument"));
      set.tempLru = true;
      return;
    case "idle_timeout":
      st.idleTimeout = atoi(need("Missing numeric argument for idle_timeout"));
      return;
    case "watcher_logbuf_size":
    case "worker_logbuf_size": {
      const kb = strtoul(need(`Missing ${name} argument`));
      if (kb === null) throw new MemcachedUsageError(`could not parse argument to ${name}`);
      const bytes = (kb * 1024) >>> 0; // unsigned int
      if (name === "watcher_logbuf_size") set.watcherLogbufSize = bytes;
      else set.workerLogbufSize = bytes;
      return;
    }
    case "slab_chunk_max": {
      const v = strtol(need("Missing slab_chunk_max argument"));
      if (v === null) throw new MemcachedUsageError("could not parse argument to slab_chunk_max");
      st.slabChunkMax = v;
      st.chunkMaxSet = true;
      return;
    }
    case "read_buf_mem_limit": {
      const v = strtoul(need("Missing read_buf_mem_limit argument"));
      if (v === null) {
        throw new MemcachedUsageError("could not parse argument to read_buf_mem_limit");
      }
      st.readBufMemLimit = Number(BigInt.asUintN(32, BigInt(v) * 1048576n)); // unsigned int
      return;
    }
    case "no_chunked_items":
      st.slabChunkMax = PAGE_SIZE;
      return;
    case "no_modern":
      if (!st.chunkMaxSet) st.slabChunkMax = PAGE_SIZE;
      set.slabReassign = false;
      set.slabAutomove = 0;
      set.maxconnsFast = false;
      set.lruSegmented = false;
      set.hashAlgorithm = "jenkins";
      set.lruCrawler = false;
      st.maintainer = false;
      return;
    case "modern":
      return;
  }
}

/**
 * Reads the flags as memcached does and applies its checks, in its order
 * (options first, then -I against -m and slab_chunk_max). Throws
 * {@linkcode UsageError} with memcached's message.
 */
export function memcachedNumbers(t: MemcachedFlagTexts): MemcachedNumbers {
  const warnings: string[] = [];
  // size_t arithmetic: a negative megabyte count wraps to an enormous limit.
  const mb = t.m === undefined ? 64 : atoi(t.m);
  const maxBytes = mb < 0 ? Number.MAX_SAFE_INTEGER : mb * 1048576;
  const maxConnections = t.c === undefined ? 1024 : atoi(t.c);
  if (maxConnections <= 0) {
    throw new MemcachedUsageError("Maximum connections must be greater than 0");
  }
  const reqsPerEvent = t.R === undefined ? 20 : atoi(t.R);
  if (reqsPerEvent === 0) {
    throw new MemcachedUsageError("Number of requests per event must be greater than 0");
  }
  const factor = t.f === undefined ? 1.25 : atof(t.f);
  if (factor <= 1.0) throw new MemcachedUsageError("Factor must be greater than 1");
  const chunkSize = t.n === undefined ? 48 : atoi(t.n);
  if (chunkSize === 0) throw new MemcachedUsageError("Chunk size must be greater than 0");
  let threads: number | undefined;
  if (t.t !== undefined) {
    threads = atoi(t.t);
    if (threads <= 0) throw new MemcachedUsageError("Number of threads must be greater than 0");
    if (threads > 64) {
      warnings.push(
        "WARNING: Setting a high number of workerthreads is not recommended.\n" +
          " Set this value to the number of cores in your machine or less.",
      );
    }
  }
  const itemSizeMax = t.I === undefined ? 1048576 : itemSize(t.I);
  const st: SubState = {
    idleTimeout: 0,
    readBufMemLimit: 0,
    slabChunkMax: 524288,
    chunkMaxSet: false,
    set: defaultStartupSettings(),
    maintainer: true,
  };
  st.set.casEnabled = !t.C;
  if (t.D !== undefined) {
    if (t.D === "") throw new MemcachedUsageError("No delimiter specified");
    st.set.prefixDelimiter = t.D[0];
    st.set.detailEnabled = true;
  }
  if (t.N !== undefined) {
    st.set.napiIds = atoi(t.N);
    if (st.set.napiIds <= 0) {
      throw new MemcachedUsageError("Maximum number of NAPI IDs must be greater than 0");
    }
  }
  // -b: atoi, as memcached reads it.
  if (t.b !== undefined) st.set.tcpBacklog = atoi(t.b);
  for (const o of t.o) {
    for (const token of o.split(",")) if (token !== "") suboption(token, st);
  }
  if (itemSizeMax < 1024) {
    throw new MemcachedUsageError("Item max size cannot be less than 1024 bytes.");
  }
  if (itemSizeMax > Math.floor(maxBytes / 2)) {
    throw new MemcachedUsageError("Cannot set item size limit higher than 1/2 of memory max.");
  }
  if (itemSizeMax > 1024 * 1048576) {
    throw new MemcachedUsageError("Cannot set item size limit higher than a gigabyte.");
  }
  const chunkMax = st.slabChunkMax;
  if (chunkMax > itemSizeMax) {
    throw new MemcachedUsageError(
      `slab_chunk_max (bytes: ${chunkMax}) cannot be larger than -I (item_size_max ${itemSizeMax})`,
    );
  }
  if (chunkMax <= 0 || itemSizeMax % chunkMax !== 0) {
    throw new MemcachedUsageError(
      `-I (item_size_max: ${itemSizeMax}) must be evenly divisible by slab_chunk_max (bytes: ${chunkMax})`,
    );
  }
  if (1048576 % chunkMax !== 0) {
    throw new MemcachedUsageError(
      `slab_chunk_max (bytes: ${chunkMax}) must divide evenly into 1048576 (slab_page_size)`,
    );
  }
  if (st.set.hotLruPct + st.set.warmLruPct > 80) {
    throw new MemcachedUsageError("hot_lru_pct + warm_lru_pct cannot be more than 80% combined");
  }
  if (st.set.tempLru && !st.maintainer) {
    throw new MemcachedUsageError("temporary_ttl requires lru_maintainer to be enabled");
  }
  st.set.lruMaintainer = st.maintainer;
  return {
    maxBytes,
    maxConnections,
    threads,
    itemSizeMax,
    factor,
    chunkSize,
    reqsPerEvent,
    idleTimeout: st.idleTimeout,
    readBufMemLimit: st.readBufMemLimit,
    slabChunkMax: chunkMax,
    startup: st.set,
    warnings,
  };
}

/**
 * `serve -e <file>`: the warm-restart image. On SIGUSR1 (and, with -e,
 * SIGTERM/SIGINT) the stopped server's store buffers are written as they
 * are, after a header with the settings they were laid out for, the clock
 * origin their times count from and a checksum per section. The next start
 * with the same -e resumes that clock origin (as memcached keeps
 * process_started) and reads the buffers back: items, flags, CAS, TTLs and
 * LRU order come back without touching one item. Any unusable file is
 * reported with memcached's "[restart]" messages and the cache starts empty.
 *
 * File: a 160-byte header (little endian), then the control, bucket and
 * page sections and an optional extra one (a replicated node's state, see
 * lib/replication/resume.ts), each a multiple of 4 bytes. Files without the
 * extra section (extra bytes 0) are those of earlier memrep versions.
 *
 * | offset | field                                                   |
 * | ------ | ------------------------------------------------------- |
 * | 0      | magic "memrepWR"                                        |
 * | 8      | u32 format version, u32 header bytes                    |
 * | 16     | f64 x 7: -m bytes, -I, -f, -n, capacity, max hash power, |
 * |        | control bytes (the layout: must equal this start's)     |
 * | 72     | f64 clock origin ms, f64 clock origin unix s, f64 saved |
 * | 96     | f64 bucket bytes, f64 page bytes                        |
 * | 112    | u32 control, bucket, page checksums                     |
 * | 124    | 16 bytes memrep version (ASCII, informative)            |
 * | 140    | f64 extra bytes, u32 extra checksum                     |
 * | 152    | 4 reserved, u32 header checksum                         |
 * @module
 */

import type { ClockOrigin } from "../server/mod.ts";
import {
  abortRestore,
  checksum,
  commitRestore,
  LAYOUT_NAMES,
  restoreTargets,
  savedSizes,
  type Store,
  type StoreLayout,
  storeLayout,
  storeSections,
} from "../store/mod.ts";
import { errorText } from "../transport/mod.ts";
import { MEMREP_VERSION } from "../version.ts";

const MAGIC = "memrepWR";
/** Bump whenever the store's buffer layout changes (item header, control slots, classes). */
const FORMAT_VERSION = 2;
const HEADER_BYTES = 160;
/** Largest read or write per call. */
const IO_CHUNK = 16 << 20;
const LAYOUT_KEYS: Array<keyof StoreLayout> = [
  "memoryLimit",
  "maxItemSize",
  "growthFactor",
  "minChunk",
  "capacity",
  "maxHashPower",
  "controlBytes",
];

/** A checked image header, its file open after the header. */
export interface WarmImage {
  /** The file name (-e). */
  path: string;
  /** The clock origin the saved times count from: start the new clock there. */
  origin: ClockOrigin;
  /** Unix ms when it was saved. */
  savedMs: number;
  /** The saving store's layout. */
  layout: StoreLayout;
  /** Section lengths and checksums (control, buckets, pages, extra). */
  sections: { bytes: number[]; sums: number[] };
  /** memrep version that wrote it. */
  version: string;
  /** The open file. */
  file: Deno.FsFile;
}

/** What a save or load did, for the log. */
export interface WarmResult {
  /** Bytes written or read. */
  bytes: number;
  /** Wall time in ms. */
  ms: number;
  /** The extra section read (null: none, or it was damaged and is ignored). */
  extra?: Uint8Array | null;
}

function report(message: string): void {
  console.error(`[restart] ${message}`);
}

/**
 * Opens the image at `path` and checks its header; null when there is no
 * usable image (reported on stderr, as memcached does).
 */
export function openWarmImage(path: string): WarmImage | null {
  let file: Deno.FsFile;
  try {
    file = Deno.openSync(path, { read: true });
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) {
      report("no metadata save file, starting with a clean cache");
    } else report(`cannot open ${path}: ${errorText(err)}, starting with a clean cache`);
    return null;
  }
  try {
    const head = new Uint8Array(HEADER_BYTES);
    const got = readFully(file, head);
    const text = (at: number, n: number) =>
      String.fromCharCode(...head.subarray(at, at + n)).replace(/\0+$/, "");
    if (got < MAGIC.length || text(0, MAGIC.length) !== MAGIC) {
      throw new Error(`${path} is not a memrep restart file`);
    }
    const dv = new DataView(head.buffer);
    const format = dv.getUint32(8, true);
    if (format !== FORMAT_VERSION) {
      throw new Error(`${path} has format version ${format}, this memrep reads ${FORMAT_VERSION}`);
    }
    if (got < HEADER_BYTES || dv.getUint32(12, true) !== HEADER_BYTES) {
      throw new Error(`${path} is truncated (header)`);
    }
    if (checksum(head.subarray(0, HEADER_BYTES - 4)) !== dv.getUint32(HEADER_BYTES - 4, true)) {
      throw new Error(`${path}: header checksum mismatch`);
    }
    const f = (i: number) => dv.getFloat64(16 + 8 * i, true);
    const layout = {} as StoreLayout;
    LAYOUT_KEYS.forEach((k, i) => layout[k] = f(i));
    // Saved times count from the origin: one in the future (the wall clock moved back) would
    // put every item's times ahead of the clock.
    if (!(f(7) <= Date.now() && f(9) <= Date.now() + 1000)) {
      throw new Error(`${path} was saved in the future (the clock moved back?)`);
    }
    const extraBytes = dv.getFloat64(140, true);
    if (!Number.isSafeInteger(extraBytes) || extraBytes < 0 || extraBytes % 4 !== 0) {
      throw new Error(`${path}: bad extra section size`);
    }
    return {
      path,
      origin: { startMs: f(7), startUnix: f(8) },
      savedMs: f(9),
      layout,
      sections: {
        bytes: [layout.controlBytes, f(10), f(11), extraBytes],
        sums: [
          dv.getUint32(112, true),
          dv.getUint32(116, true),
          dv.getUint32(120, true),
          dv.getUint32(148, true),
        ],
      },
      version: text(124, 16),
      file,
    };
  } catch (err) {
    file.close();
    report(`${errorText(err)}, starting with a clean cache`);
    return null;
  }
}

/**
 * Reads the image's sections into `store`, which must be empty and made
 * with a clock at `image.origin`. False (reported) when the settings differ
 * or a section is truncated or damaged: the store is then still empty.
 * The file is removed once loaded, as memcached removes its metadata file:
 * a crash later must not bring back this old state.
 */
export function loadWarmImage(image: WarmImage, store: Store): WarmResult | null {
  const t0 = performance.now();
  const file = image.file;
  let targets = false;
  try {
    const want = storeLayout(store);
    for (const k of LAYOUT_KEYS) {
      if (want[k] !== image.layout[k]) {
        report(
          `restart incompatible due to setting for [${LAYOUT_NAMES[k]}] [old value: ${
            image.layout[k]
          }]`,
        );
        throw new Error("failed to validate metadata");
      }
    }
    const [controlBytes, bucketBytes, pageBytes, extraBytes] = image.sections.bytes;
    const [controlSum, bucketSum, pageSum, extraSum] = image.sections.sums;
    const control = new Uint8Array(controlBytes);
    if (readFully(file, control) !== controlBytes) throw new Error("truncated (control)");
    if (checksum(control) !== controlSum) throw new Error("control checksum mismatch");
    const sizes = savedSizes(store, control);
    if (typeof sizes === "string") throw new Error(sizes);
    if (sizes.buckets !== bucketBytes || sizes.pages !== pageBytes) {
      throw new Error("section sizes do not match the control section");
    }
    targets = true;
    const { buckets, pages } = restoreTargets(store, control);
    if (readFully(file, buckets) !== bucketBytes) throw new Error("truncated (buckets)");
    if (checksum(buckets) !== bucketSum) throw new Error("bucket checksum mismatch");
    if (readFully(file, pages) !== pageBytes) throw new Error("truncated (pages)");
    if (checksum(pages) !== pageSum) throw new Error("page checksum mismatch");
    let extra: Uint8Array | null = null;
    if (extraBytes > 0) {
      extra = new Uint8Array(extraBytes);
      if (readFully(file, extra) !== extraBytes) throw new Error("truncated (extra)");
      if (checksum(extra) !== extraSum) {
        // The cache itself checked out: keep it, without what came with it.
        report(`${image.path}: extra section checksum mismatch, ignored`);
        extra = null;
      }
    }
    if (readFully(file, new Uint8Array(1)) !== 0) throw new Error("trailing bytes");
    commitRestore(store, control);
    file.close();
    try {
      Deno.removeSync(image.path);
    } catch (err) {
      report(`cannot remove ${image.path} after loading it: ${errorText(err)}`);
    }
    return {
      bytes: HEADER_BYTES + controlBytes + bucketBytes + pageBytes + extraBytes,
      ms: performance.now() - t0,
      extra,
    };
  } catch (err) {
    if (targets) abortRestore(store);
    file.close();
    const what = errorText(err);
    report(
      what === "failed to validate metadata"
        ? `${what}, starting with a clean cache`
        : `${image.path}: ${what}, starting with a clean cache`,
    );
    return null;
  }
}

/**
 * Writes `store` (stopped: no thread serving), its clock origin and `extra`
 * (a multiple of 4 bytes; what else must come back with this cache) to
 * `path`, through a temporary file renamed over it, so a crash mid-write
 * leaves the old file or none, never half of one.
 */
export function saveWarmImage(
  path: string,
  store: Store,
  origin: ClockOrigin,
  extra: Uint8Array = new Uint8Array(0),
): WarmResult {
  if (extra.byteLength % 4 !== 0) throw new Error("extra section not a multiple of 4 bytes");
  const t0 = performance.now();
  const layout = storeLayout(store);
  const { control, buckets, pages } = storeSections(store);
  const head = new Uint8Array(HEADER_BYTES);
  const dv = new DataView(head.buffer);
  for (let i = 0; i < MAGIC.length; i++) head[i] = MAGIC.charCodeAt(i);
  dv.setUint32(8, FORMAT_VERSION, true);
  dv.setUint32(12, HEADER_BYTES, true);
  LAYOUT_KEYS.forEach((k, i) => dv.setFloat64(16 + 8 * i, layout[k], true));
  dv.setFloat64(72, origin.startMs, true);
  dv.setFloat64(80, origin.startUnix, true);
  dv.setFloat64(88, Date.now(), true);
  dv.setFloat64(96, buckets.byteLength, true);
  dv.setFloat64(104, pages.byteLength, true);
  dv.setUint32(112, checksum(control), true);
  dv.setUint32(116, checksum(buckets), true);
  dv.setUint32(120, checksum(pages), true);
  dv.setFloat64(140, extra.byteLength, true);
  dv.setUint32(148, checksum(extra), true);
  const version = MEMREP_VERSION.slice(0, 16);
  for (let i = 0; i < version.length; i++) head[124 + i] = version.charCodeAt(i);
  dv.setUint32(HEADER_BYTES - 4, checksum(head.subarray(0, HEADER_BYTES - 4)), true);
  const tmp = `${path}.tmp`;
  const file = Deno.openSync(tmp, { write: true, create: true, truncate: true, mode: 0o600 });
  try {
    try {
      for (const part of [head, control, buckets, pages, extra]) writeFully(file, part);
    } finally {
      file.close();
    }
    Deno.renameSync(tmp, path);
  } catch (err) {
    // Disk full or the like: leave no half-written file behind.
    try {
      Deno.removeSync(tmp);
    } catch { /* never created or already gone */ }
    throw err;
  }
  const bytes = head.byteLength + control.byteLength + buckets.byteLength + pages.byteLength +
    extra.byteLength;
  return { bytes, ms: performance.now() - t0 };
}

/** Reads until `into` is full or the file ends; returns the bytes read. */
function readFully(file: Deno.FsFile, into: Uint8Array): number {
  let off = 0;
  while (off < into.byteLength) {
    const n = file.readSync(into.subarray(off, Math.min(into.byteLength, off + IO_CHUNK)));
    if (n === null || n === 0) break;
    off += n;
  }
  return off;
}

function writeFully(file: Deno.FsFile, bytes: Uint8Array): void {
  let off = 0;
  while (off < bytes.byteLength) {
    off += file.writeSync(bytes.subarray(off, Math.min(bytes.byteLength, off + IO_CHUNK)));
  }
}

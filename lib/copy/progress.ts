/**
 * Progress of a copy: a live line on a terminal, and one summary line (or
 * JSON) at the end.
 * @module
 */

/** Final (or so-far) result of a copy. */
export interface CopySummary {
  /** Items written to every target. */
  copied: number;
  /** Items not written, none of them failures: `expired + missing + existing`. */
  skipped: number;
  /** Items a source or target refused. */
  failed: number;
  /** Value bytes copied. */
  bytes: number;
  /** Wall time of the copy. */
  seconds: number;
  /** copied / seconds. */
  itemsPerSecond: number;
  /** Skipped: TTL ran out before the write. */
  expired: number;
  /** Skipped: listed by the source, gone (expired/evicted) when fetched. */
  missing: number;
  /** Skipped: `--mode add` found the key on the target. */
  existing: number;
  /** Stopped by Ctrl-C (SIGINT). */
  interrupted: boolean;
  /** Messages naming servers (or files) and counts. */
  errors: string[];
}

/** Counters shown while copying. */
export interface ProgressCounts {
  /** Items copied so far. */
  copied: number;
  /** Items skipped so far. */
  skipped: number;
  /** Items failed so far. */
  failed: number;
  /** Value bytes copied so far. */
  bytes: number;
}

/** Options of {@linkcode Progress}. */
export interface ProgressOptions {
  /** Redraw a live line (a terminal); otherwise stay quiet until the summary. */
  live: boolean;
  /** Where lines go (default stderr). */
  write?: (text: string) => void;
  /** Expected item count for the ETA, when known. */
  total?: number;
  /** Share of the input consumed (0..1), for the ETA when the item count is unknown. */
  fraction?: () => number | undefined;
  /** Redraw period (default 250 ms). */
  intervalMs?: number;
}

const encoder = new TextEncoder();

function writeStderr(text: string): void {
  const b = encoder.encode(text);
  let off = 0;
  while (off < b.length) off += Deno.stderr.writeSync(b.subarray(off));
}

/** Thousands separators, locale-independent. */
export function formatCount(n: number): string {
  return Math.round(n).toString().replace(/\B(?=(\d{3})+(?!\d))/g, ",");
}

/** 1.5 MB, 320 kB, 12 B. */
export function formatBytes(n: number): string {
  if (n >= 1e9) return `${(n / 1e9).toFixed(2)} GB`;
  if (n >= 1e6) return `${(n / 1e6).toFixed(1)} MB`;
  if (n >= 1e3) return `${(n / 1e3).toFixed(0)} kB`;
  return `${n} B`;
}

function formatEta(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return "?";
  const s = Math.ceil(seconds);
  const m = Math.floor(s / 60);
  return m > 0 ? `${m}m${String(s % 60).padStart(2, "0")}s` : `${s}s`;
}

/**
 * The live progress line. The ETA comes from `total` items when known, else
 * from `fraction` (share of the input read, e.g. of a dump file).
 */
export function progressLine(
  c: ProgressCounts,
  seconds: number,
  total?: number,
  fraction?: number,
): string {
  const rate = seconds > 0 ? c.copied / seconds : 0;
  const done = c.copied + c.skipped + c.failed;
  let line = `copied ${formatCount(c.copied)}`;
  if (total !== undefined && total > 0) line += `/${formatCount(total)}`;
  line += ` items, ${formatBytes(c.bytes)}, ${formatCount(rate)} items/s`;
  let share: number | undefined;
  if (total !== undefined && total > 0) share = done / total;
  else if (fraction !== undefined && fraction > 0) share = fraction;
  if (share !== undefined && done > 0) {
    share = Math.min(1, share);
    const eta = share >= 1 ? 0 : seconds * (1 - share) / share;
    line += `, ${Math.floor(share * 100)}%, ETA ${formatEta(eta)}`;
  }
  if (c.skipped > 0) line += `, skipped ${formatCount(c.skipped)}`;
  if (c.failed > 0) line += `, failed ${formatCount(c.failed)}`;
  return line;
}

/** The one-line summary printed at the end (and on Ctrl-C). */
export function summaryLine(s: CopySummary): string {
  const parts = [
    `copied ${s.copied}`,
    `skipped ${s.skipped}` +
    (s.skipped > 0 ? ` (expired ${s.expired}, missing ${s.missing}, existing ${s.existing})` : ""),
    `failed ${s.failed}`,
  ];
  const head = s.interrupted ? "memrep replicate: interrupted: " : "memrep replicate: ";
  return `${head}${parts.join(", ")} in ${s.seconds.toFixed(2)} s ` +
    `(${formatCount(s.itemsPerSecond)} items/s, ${formatBytes(s.bytes)})`;
}

/** Redraws the live line on a timer while a copy runs. */
export class Progress {
  readonly #live: boolean;
  readonly #write: (text: string) => void;
  readonly #intervalMs: number;
  #total: number | undefined;
  #fraction: (() => number | undefined) | undefined;
  #counts: ProgressCounts = { copied: 0, skipped: 0, failed: 0, bytes: 0 };
  #started = 0;
  #timer: ReturnType<typeof setInterval> | undefined;
  #drawn = false;

  /** Creates a reporter (nothing is shown before {@linkcode start}). */
  constructor(options: ProgressOptions) {
    this.#live = options.live;
    this.#write = options.write ?? writeStderr;
    this.#total = options.total;
    this.#fraction = options.fraction;
    this.#intervalMs = options.intervalMs ?? 250;
  }

  /** Sets the expected item count once known. */
  set total(n: number | undefined) {
    this.#total = n;
  }

  /** Sets where the share of input consumed comes from. */
  set fraction(f: (() => number | undefined) | undefined) {
    this.#fraction = f;
  }

  /** Starts the clock (and the live line on a terminal). */
  start(): void {
    this.#started = performance.now();
    if (this.#live) {
      this.#timer = setInterval(() => this.#draw(), this.#intervalMs);
      Deno.unrefTimer(this.#timer);
    }
  }

  /** Seconds since {@linkcode start}. */
  get seconds(): number {
    return (performance.now() - this.#started) / 1000;
  }

  /** Records the latest counters. */
  update(counts: ProgressCounts): void {
    this.#counts = counts;
  }

  /** Stops the live line and erases it. */
  stop(): void {
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#timer = undefined;
    if (this.#drawn) this.#write("\r\x1b[K");
    this.#drawn = false;
  }

  #draw(): void {
    const line = progressLine(this.#counts, this.seconds, this.#total, this.#fraction?.());
    this.#write("\r\x1b[K" + line);
    this.#drawn = true;
  }
}

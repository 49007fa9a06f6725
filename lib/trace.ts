/**
 * A per-request timeline of the proxy for finding where a large multi-get's
 * time goes, off unless `MEMREP_TRACE=1` (then each mark costs a clock read;
 * off, a branch on a constant). A timeline starts when a client's read
 * finds its buffer empty (a new request), takes named marks (a name seen
 * again in it is numbered: `bsend#0`, `bsend#1`...) and ends when the
 * client's reply is written; every 500 timelines the median time of each
 * mark since the start (µs) goes to stderr, in time order. One timeline at
 * a time: marks of other connections meanwhile land in it (use one client).
 * @module
 */

/** Tracing on (`MEMREP_TRACE=1`). */
export const TRACE: boolean = (() => {
  try {
    return Deno.env.get("MEMREP_TRACE") === "1";
  } catch {
    return false; // no env permission: off
  }
})();

/** Timelines per printed summary. */
const PER_SUMMARY = 500;

let active = false;
const seen = new Map<string, number>();
let names: string[] = [];
let times: number[] = [];
const summary = new Map<string, number[]>();
let timelines = 0;

/** A new request's first read: a timeline starts (unless one is running). */
export function traceStart(): void {
  if (active) return;
  active = true;
  seen.clear();
  names = [];
  times = [];
  mark("read0");
}

/** Mark `name` now in the running timeline (none: nothing). */
export function mark(name: string): void {
  if (!active) return;
  const n = seen.get(name) ?? 0;
  seen.set(name, n + 1);
  names.push(`${name}#${n}`);
  times.push(performance.now());
}

/** The reply is written: the timeline ends; every {@linkcode PER_SUMMARY} a summary is printed. */
export function traceEnd(): void {
  if (!active) return;
  mark("end");
  active = false;
  for (let i = 0; i < names.length; i++) {
    let all = summary.get(names[i]);
    if (all === undefined) summary.set(names[i], all = []);
    all.push(1000 * (times[i] - times[0]));
  }
  if (++timelines % PER_SUMMARY !== 0) return;
  const rows: [string, number][] = [];
  for (const [name, all] of summary) {
    if (all.length < PER_SUMMARY / 10) continue; // rare marks (another request's) left out
    all.sort((a, b) => a - b);
    rows.push([name, all[all.length >> 1]]);
  }
  rows.sort((a, b) => a[1] - b[1]);
  console.error(
    `trace (${timelines}, µs): ${rows.map(([k, v]) => `${k}=${Math.round(v)}`).join(" ")}`,
  );
  summary.clear();
}

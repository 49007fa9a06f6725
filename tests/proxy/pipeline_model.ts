/**
 * The model of tests/proxy/pipeline_model_test.ts: per key, the set of
 * values it may hold after every earlier request of its (only) connection,
 * narrowed by each reply, and the check of every read against it. A value
 * is `flags|data` (counters: data without memcached's in-place padding);
 * ABSENT is "no item".
 * @module
 */

/** "No item" in a key's possible states. */
export const ABSENT = "\u0000";

/** Violation kinds; all must stay 0. */
export type Kind =
  | "stale"
  | "future"
  | "resurrected"
  | "lost"
  | "wrong_reply"
  | "cas"
  | "shape"
  | "hang";

/** A CAS token a read returned; "stale" once a write of the key was applied since. */
export interface Token {
  cas: bigint;
  state: "fresh" | "stale" | "unsure";
}

/** One write (or delete) the model applied, for classifying a wrong read. */
interface Event {
  seq: number;
  /** States this write may have produced. */
  made: string[];
  /** A delete (its result is ABSENT). */
  del: boolean;
  /** When the write was sent (ms, for reports). */
  at: number;
}

/** When the request being modelled was sent (set by the client before each reply). */
export const clock = { now: 0 };

/** What one key may hold. */
export class KeyModel {
  /** Possible states now. */
  poss: Set<string> = new Set([ABSENT]);
  /** Writes applied so far, oldest first. */
  readonly events: Event[] = [];
  /**
   * Set when this key's primary was killed at this time: the copies of
   * writes it answered just before may not have reached the backups, so
   * until a write sent after it replaces the value, any earlier state (or a
   * miss) may be read; only a later write's value (future) is still wrong.
   */
  wildSince: number | undefined;
  /** MEMREP_MODEL_STRICT: the key's primary was killed at this time; a miss is allowed until a write sent after it. */
  lostAt: number | undefined;
  /** The last CAS token read and whether no write of the key was sent since ("fresh"). */
  token: Token | undefined;
  /** Tokens read and not known stale yet (a cas may use an older one than `token`). */
  readonly #live = new Set<Token>();

  /** A token read now. */
  read(cas: bigint, fresh: boolean): void {
    this.token = { cas, state: fresh ? "fresh" : "unsure" };
    this.#live.add(this.token);
  }

  /** A write at `seq` that may have produced `made` (`sure`: it was applied). */
  wrote(seq: number, made: Iterable<string>, del: boolean, sure: boolean): void {
    this.events.push({ seq, made: [...made], del, at: clock.now });
    for (const t of this.#live) {
      if (sure) {
        t.state = "stale";
        this.#live.delete(t);
      } else if (t.state === "fresh") t.state = "unsure";
    }
  }
}

/** Violation tallies and the first few reports. */
export class Tally {
  /** Counts per kind. */
  readonly counts: Record<Kind, number> = {
    stale: 0,
    future: 0,
    resurrected: 0,
    lost: 0,
    wrong_reply: 0,
    cas: 0,
    shape: 0,
    hang: 0,
  };
  /** Checked reads, hits, allowed misses, error replies (during faults / calm). */
  reads = 0;
  /** Reads of keys whose primary was killed (only future values are wrong). */
  wildReads = 0;
  hits = 0;
  faultMisses = 0;
  faultErrors = 0;
  calmErrors = 0;
  writes = 0;
  casStored = 0;
  /**
   * A `cas` with a token just read answered EXISTS: README Limits (a backup's
   * token handed out after a skipped repair). A violation only under
   * MEMREP_MODEL_STRICT.
   */
  casKnownExists = 0;
  readonly reports: string[] = [];

  /** Counts a violation. */
  bad(kind: Kind, msg: string): void {
    this.counts[kind]++;
    if (this.reports.length < 20) this.reports.push(`${kind}: ${msg}`);
  }

  /** Total violations. */
  total(): number {
    return Object.values(this.counts).reduce((a, b) => a + b, 0);
  }
}

/**
 * Checks a read at `seq` of `key` that answered `got` (ABSENT: a miss)
 * against the model; `calm`: no fault was active around it. Wrong values
 * are classified once the batch is modelled (a future value's write comes
 * after the read), so they are queued in `pending`.
 */
export function checkRead(
  t: Tally,
  key: string,
  m: KeyModel,
  seq: number,
  got: string,
  calm: boolean,
  pending: { key: string; m: KeyModel; seq: number; got: string; want: string[]; wild?: boolean }[],
): void {
  t.reads++;
  if (m.wildSince !== undefined) {
    t.wildReads++;
    if (got !== ABSENT) pending.push({ key, m, seq, got, want: [...m.poss], wild: true });
    return;
  }
  if (m.poss.has(got)) {
    if (got !== ABSENT) t.hits++;
    return;
  }
  if (got === ABSENT) {
    if (calm) {
      const last = m.events.slice(-3).map((e) =>
        `#${e.seq}@${e.at % 100000}${e.del ? " del" : ""}`
      );
      t.bad(
        "lost",
        `${key} #${seq}@${clock.now % 100000}: miss, want ${show([...m.poss])} (${last})`,
      );
    } else t.faultMisses++;
    return;
  }
  pending.push({ key, m, seq, got, want: [...m.poss] });
}

/** Classifies the queued wrong reads (call once their batch is fully modelled). */
export function classify(t: Tally, pending: Parameters<typeof checkRead>[6]): void {
  for (const p of pending) {
    const src = p.m.events.find((e) => e.made.includes(p.got));
    const what = `${p.key} #${p.seq}: got ${show([p.got])}, want ${show(p.want)}`;
    if (p.wild) {
      if (
        src !== undefined && src.seq > p.seq &&
        !p.m.events.some((e) => e.seq < p.seq && e.made.includes(p.got))
      ) {
        t.bad("future", `${what} (written by #${src.seq}; key's primary was killed)`);
      }
      continue;
    }
    if (src === undefined) t.bad("stale", `${what} (never written)`);
    else if (src.seq > p.seq) t.bad("future", `${what} (written by #${src.seq})`);
    else if (p.m.events.some((e) => e.del && e.seq > src.seq && e.seq < p.seq)) {
      t.bad("resurrected", `${what} (written by #${src.seq}, deleted since)`);
    } else t.bad("stale", `${what} (written by #${src.seq})`);
  }
  pending.length = 0;
}

function show(xs: string[]): string {
  return xs.map((x) => x === ABSENT ? "<miss>" : JSON.stringify(x.slice(0, 40))).join("|");
}

/** Present states of `poss`. */
export function present(poss: Set<string>): string[] {
  return [...poss].filter((x) => x !== ABSENT);
}

/** `flags|data` of a state. */
export function split(state: string): [number, string] {
  const i = state.indexOf("|");
  return [Number(state.slice(0, i)), state.slice(i + 1)];
}

/**
 * Applies a conditional/unconditional write's outcome. `apply` maps a
 * present state (or ABSENT) to its result, or null where the write does not
 * apply (NOT_STORED / NOT_FOUND). `outcome`: "ok" (applied), "no" (not
 * applied), "err" (unknown). Returns false when the reply fits no state.
 */
export function write(
  m: KeyModel,
  seq: number,
  outcome: "ok" | "no" | "err",
  apply: (state: string) => string | null,
  del = false,
): boolean {
  const applied = new Set<string>(), kept = new Set<string>();
  for (const s of m.poss) {
    const r = apply(s);
    if (r === null) kept.add(s);
    else applied.add(r);
  }
  if (outcome === "ok") {
    if (applied.size === 0) return false;
    m.wrote(seq, applied, del, true);
    m.poss = applied;
  } else if (outcome === "no") {
    // Not applied where nothing fits: a wrong reply; the caller decides (a fault may answer it).
    if (kept.size === 0) return false;
    m.poss = kept;
  } else {
    if (applied.size > 0) m.wrote(seq, applied, del, false);
    m.poss = new Set([...m.poss, ...applied]);
  }
  return true;
}

/**
 * Shared parts of the seeded fault-injection suites (fault_*_test.ts):
 * seeds from the environment, a group whose every process ever started is
 * kept (to check exit codes and stderr at the end), seeded faults on nodes
 * and links, and the crash check.
 * @module
 */

import type { Relay } from "../helpers/mod.ts";
import type { Group } from "./group.ts";
import { contents, type Node } from "./pair.ts";

/** A pause. */
export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/**
 * The seeds to run: MEMREP_CHAOS_SEED (one, replayed), else MEMREP_SEEDS
 * random ones, else `known` (seeds that found a defect) or `n` random ones.
 */
export function seeds(n: number, known: number[] = []): number[] {
  const one = Number(Deno.env.get("MEMREP_CHAOS_SEED"));
  if (Number.isInteger(one) && one > 0) return [one];
  const env = Deno.env.get("MEMREP_SEEDS");
  if (env === undefined && known.length > 0) return known;
  const count = Number(env ?? n);
  return Array.from({ length: count }, () => 1 + Math.floor(Math.random() * 1e9));
}

/** Violations of one run, per kind. */
export class Violations {
  readonly #kinds = new Map<string, string[]>();

  /** One violation of `kind`, described by `what`. */
  add(kind: string, what: string): void {
    let list = this.#kinds.get(kind);
    if (list === undefined) this.#kinds.set(kind, list = []);
    list.push(what);
  }

  /** Total count. */
  get total(): number {
    let n = 0;
    for (const l of this.#kinds.values()) n += l.length;
    return n;
  }

  /** `kind=count ...` and the first few descriptions. */
  report(): string {
    if (this.total === 0) return "0 violations";
    const counts = [...this.#kinds].map(([k, l]) => `${k}=${l.length}`).join(" ");
    const first = [...this.#kinds.values()].flatMap((l) => l.slice(0, 4)).slice(0, 16);
    return `${counts}\n${first.join("\n")}`;
  }
}

/**
 * Every process a run started, with whether the run killed it itself
 * (SIGKILL): the others must end with code 0 and no uncaught error.
 */
export class Lives {
  readonly #all: { node: Node; killed: boolean }[] = [];

  /** A node just started. */
  started(node: Node): void {
    this.#all.push({ node, killed: false });
  }

  /** The run kills `node` with -9. */
  killed(node: Node): void {
    const life = this.#all.find((l) => l.node.proc === node.proc);
    if (life !== undefined) life.killed = true;
  }

  /** Crashes: a process that died unasked, exited non-zero, or wrote an uncaught error. */
  async check(v: Violations): Promise<void> {
    for (const { node, killed } of this.#all) {
      const status = await node.proc.status;
      const id = `pid ${node.proc.pid} port ${node.port}`;
      if (!killed && (status.code !== 0 || status.signal !== null)) {
        v.add("crash", `${id} ended code ${status.code} signal ${status.signal}`);
      }
      const bad = node.proc.stderrLines().filter((l) =>
        /uncaught|panicked|TypeError|RangeError|ReferenceError|AssertionError|out of memory/i
          .test(l)
      );
      if (bad.length > 0) v.add("crash", `${id} stderr: ${bad.slice(0, 3).join(" | ")}`);
    }
  }
}

/** The relay between members i and j of a group started with relays. */
export function relayOf(g: Group, i: number, j: number): Relay {
  return g.relays[Math.min(i, j)][Math.max(i, j)];
}

/** What {@linkcode fault} may do. */
export interface FaultKinds {
  /** kill -9 a member and restart it empty (at once or after a while). */
  kill?: boolean;
  /** SIGSTOP a member past --repl-timeout, then SIGCONT. */
  stop?: boolean;
  /** Cut, hang, black-hole, slow or flap links. */
  links?: boolean;
  /**
   * Shapes the first three lack: a SIGSTOP of 3 to 6 times --repl-timeout
   * (`longstop`), a link cut and healed every 100-400 ms for seconds
   * (`flapfast`), a member restarted empty while the others are cut from
   * each other (`restart-split`), kill -9 again while the restarted member
   * receives its full copy (`kill-copy`), or its copy's sender with
   * `killSender` (two members killed in a row). `timeoutMs` is the group's
   * --repl-timeout.
   */
  shapes?: { timeoutMs: number; kill: boolean; killSender?: boolean };
}

/**
 * One seeded fault on group `g` (relays on every link), undone before it
 * returns. `busy` marks members a concurrent fault is working on (never two
 * on one member, so a restart and a SIGSTOP do not meet); a restarted member
 * gets `extra(i)` again (its `-t`).
 */
export async function fault(
  g: Group,
  rnd: () => number,
  kinds: FaultKinds,
  lives: Lives,
  busy: Set<number>,
  extra: (i: number) => string[] = () => [],
): Promise<string> {
  const n = g.nodes.length;
  const i = Math.floor(rnd() * n);
  let j = Math.floor(rnd() * (n - 1));
  if (j >= i) j++;
  const options: string[] = [];
  if (kinds.kill) options.push("kill", "kill-late");
  if (kinds.stop) options.push("stop");
  if (kinds.links) options.push("drop", "pause", "blackhole", "refuse", "latency", "flap");
  if (kinds.shapes) {
    options.push("longstop", "flapfast");
    if (kinds.shapes.kill) options.push("restart-split", "kill-copy", "stop-copy");
  }
  const kind = options[Math.floor(rnd() * options.length)];
  const onNode = [
    "kill",
    "kill-late",
    "stop",
    "longstop",
    "restart-split",
    "kill-copy",
    "stop-copy",
  ];
  if (onNode.includes(kind) && busy.has(i)) return "none";
  const link = n > 1 ? relayOf(g, i, j) : undefined;
  if (kind === "kill" || kind === "kill-late") {
    busy.add(i);
    try {
      lives.killed(g.nodes[i]);
      g.nodes[i].proc.kill("SIGKILL");
      await g.nodes[i].proc.status;
      if (kind === "kill-late") await sleep(300 + rnd() * 1500);
      lives.started(await g.restart(i, extra(i)));
    } finally {
      busy.delete(i);
    }
  } else if (kind === "stop") {
    busy.add(i);
    try {
      g.nodes[i].proc.kill("SIGSTOP");
      await sleep(300 + rnd() * 1800);
      g.nodes[i].proc.kill("SIGCONT");
    } finally {
      busy.delete(i);
    }
  } else if (kind === "longstop") {
    busy.add(i);
    try {
      g.nodes[i].proc.kill("SIGSTOP");
      await sleep(kinds.shapes!.timeoutMs * (3 + rnd() * 3));
      g.nodes[i].proc.kill("SIGCONT");
    } finally {
      busy.delete(i);
    }
  } else if (kind === "restart-split" || kind === "kill-copy" || kind === "stop-copy") {
    busy.add(i);
    try {
      // Stopping the sender kills no second member: always allowed.
      const sender = (kind === "stop-copy" || kinds.shapes!.killSender === true) && rnd() < 0.5;
      const stopMs = kind === "stop-copy" ? kinds.shapes!.timeoutMs * (2 + rnd() * 3) : 0;
      return `${kind} ${i}${await restartShape(
        g,
        i,
        kind,
        rnd,
        lives,
        extra,
        sender,
        stopMs,
        busy,
      )}`;
    } finally {
      busy.delete(i);
    }
  } else if (link === undefined) {
    return "none";
  } else if (kind === "flapfast") {
    for (const end = Date.now() + 1500 + rnd() * 2500; Date.now() < end;) {
      link.refuse(true);
      link.drop();
      await sleep(100 + rnd() * 300);
      link.refuse(false);
      await sleep(100 + rnd() * 300);
    }
  } else if (kind === "drop") {
    link.drop();
  } else if (kind === "pause") {
    link.pause();
    await sleep(rnd() * 1500);
    link.resume();
  } else if (kind === "blackhole") {
    link.blackhole(true);
    await sleep(rnd() * 1200);
    link.blackhole(false);
    link.drop();
  } else if (kind === "refuse") {
    link.refuse(true);
    link.drop();
    await sleep(200 + rnd() * 1500);
    link.refuse(false);
  } else if (kind === "latency") {
    link.setLatency(Math.floor(rnd() * 40));
    await sleep(rnd() * 1000);
    link.setLatency(0);
  } else {
    for (let k = 0; k < 6; k++) {
      link.drop();
      await sleep(20 + rnd() * 150);
    }
  }
  return `${kind} ${i}${link && !onNode.includes(kind) ? `-${j}` : ""}`;
}

/**
 * `restart-split`: every link among the other members cut, member `i`
 * killed and restarted empty, the cuts healed a while later. `kill-copy`:
 * `i` killed and restarted empty, then killed again while it receives its
 * full copy (if one starts within 5 s) and restarted once more; `sender`:
 * the member sending that copy is killed and restarted instead.
 * `stop-copy`: as `kill-copy`, but SIGSTOPped for `stopMs` instead of killed.
 */
async function restartShape(
  g: Group,
  i: number,
  kind: string,
  rnd: () => number,
  lives: Lives,
  extra: (i: number) => string[],
  sender: boolean,
  stopMs: number,
  busy: Set<number>,
): Promise<string> {
  const n = g.nodes.length;
  const cuts: Relay[] = [];
  if (kind === "restart-split") {
    for (let a = 0; a < n; a++) {
      for (let b = a + 1; b < n; b++) if (a !== i && b !== i) cuts.push(relayOf(g, a, b));
    }
    for (const r of cuts) {
      r.refuse(true);
      r.drop();
    }
  }
  let note = "";
  try {
    lives.killed(g.nodes[i]);
    g.nodes[i].proc.kill("SIGKILL");
    await g.nodes[i].proc.status;
    const marks = g.nodes.map((m) => m.proc.outputLines().length);
    const node = await g.restart(i, extra(i));
    lives.started(node);
    if (kind === "kill-copy" || kind === "stop-copy") {
      const copying = await node.proc.waitForLog(/^replication: marugoto copying \(receiving/, 5000)
        .then(() => true, () => false);
      // The sender logged its start before the joiner did.
      const from = g.nodes.findIndex((m, k) =>
        k !== i &&
        m.proc.outputLines().slice(marks[k]).some((l) =>
          /^replication: marugoto copying \(sending/.test(l)
        )
      );
      const victim = sender && from >= 0 && !busy.has(from) ? from : i;
      busy.add(victim);
      if (copying && kind === "stop-copy") {
        await sleep(rnd() * 300);
        g.nodes[victim].proc.kill("SIGSTOP");
        await sleep(stopMs);
        g.nodes[victim].proc.kill("SIGCONT");
        note = victim !== i ? ` (sender ${victim})` : "";
      } else if (copying) {
        await sleep(rnd() * 300);
        const dead = g.nodes[victim];
        lives.killed(dead);
        dead.proc.kill("SIGKILL");
        await dead.proc.status;
        lives.started(await g.restart(victim, extra(victim)));
        if (victim !== i) note = ` (sender ${victim})`;
      } else note = " (no copy seen)";
      if (victim !== i) busy.delete(victim);
    } else await sleep(500 + rnd() * 2000);
  } finally {
    for (const r of cuts) r.refuse(false);
  }
  return note;
}

/** Undo every lasting fault: links forward again, no member is stopped. */
export function healAll(g: Group): void {
  for (const r of g.relays.flat()) {
    if (r === undefined) continue;
    r.refuse(false);
    r.blackhole(false);
    r.setLatency(0);
    r.resume();
  }
  for (const node of g.nodes) node.proc.kill("SIGCONT");
}

/** Differences between member 0's items and each other's (key, which member, both sides). */
export async function differences(nodes: Node[]): Promise<string[]> {
  const all = await Promise.all(nodes.map((n) => contents(n)));
  const diff: string[] = [];
  for (let k = 1; k < all.length; k++) {
    for (const [key, v] of all[0]) {
      const w = all[k].get(key);
      if (w !== v) diff.push(`${key} @0=${v.slice(0, 40)} @${k}=${w?.slice(0, 40)}`);
    }
    for (const [key, w] of all[k]) {
      if (!all[0].has(key)) diff.push(`${key} @0=undefined @${k}=${w.slice(0, 40)}`);
    }
  }
  return diff;
}

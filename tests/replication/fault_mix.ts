/**
 * Shared parts of the seeded fault-injection suites (fault_*_test.ts):
 * seeds from the environment, a group whose every process ever started is
 * kept (to check exit codes and stderr at the end), seeded faults on nodes
 * and links, and the crash check.
 * @module
 */

import type { Relay } from "../helpers/mod.ts";
import type { Group } from "./group.ts";
import type { Node } from "./pair.ts";

/** A pause. */
export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/**
 * The seeds to run: MEMREP_CHAOS_SEED (one, replayed), else MEMREP_SEEDS
 * random ones (default `n`).
 */
export function seeds(n: number): number[] {
  const one = Number(Deno.env.get("MEMREP_CHAOS_SEED"));
  if (Number.isInteger(one) && one > 0) return [one];
  const count = Number(Deno.env.get("MEMREP_SEEDS") ?? n);
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
  const kind = options[Math.floor(rnd() * options.length)];
  if ((kind === "kill" || kind === "kill-late" || kind === "stop") && busy.has(i)) return "none";
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
  } else if (link === undefined) {
    return "none";
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
  return `${kind} ${i}${link && !kind.startsWith("kill") && kind !== "stop" ? `-${j}` : ""}`;
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

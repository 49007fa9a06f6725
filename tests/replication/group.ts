/**
 * Helpers for replica-group suites: start n `serve` nodes as one group
 * (`--replicate a,b,c --repl-listen <own>`), optionally with a relay on
 * every link so a test can cut any pair of members, and wait for the
 * group to be linked and settled.
 * @module
 */

import { freePort, type Relay, startMemrep, startRelay, waitUntil } from "../helpers/mod.ts";
import { equal } from "../helpers/assert.ts";
import { contents, type Node, replStats } from "./pair.ts";

/** A started group. */
export interface Group {
  /** The nodes, in member order. */
  nodes: Node[];
  /** Each member's replication port. */
  replPorts: number[];
  /** relays[i][j] (i < j): the relay member i dials member j through (with `relays`). */
  relays: Relay[][];
  /** Start member i again (after it was stopped or killed), with the same address. */
  restart(i: number, extra?: string[]): Promise<Node>;
  /** Stop every node and relay. */
  close(): Promise<void>;
}

/**
 * Start `n` members with `args` (member i also with `member(i)`). `relays`:
 * member i reaches member j > i (the one it dials) through relays[i][j], so
 * `cut(group, i, j)` separates exactly those two.
 */
export async function startGroup(
  n: number,
  args: string[] = [],
  opts: { relays?: boolean; wait?: boolean; member?: (i: number) => string[] } = {},
): Promise<Group> {
  const replPorts = Array.from({ length: n }, () => freePort());
  const relays: Relay[][] = Array.from({ length: n }, () => []);
  if (opts.relays) {
    for (let i = 0; i < n; i++) {
      for (let j = i + 1; j < n; j++) relays[i][j] = startRelay(replPorts[j]);
    }
  }
  const list = (i: number) =>
    replPorts.map((p, j) => `127.0.0.1:${j > i && opts.relays ? relays[i][j].port : p}`).join(
      ",",
    );
  const nodes: Node[] = [];
  const start = async (i: number, port?: number, extra: string[] = []) => {
    const proc = await startMemrep(
      [
        "serve",
        "-v",
        "--replicate",
        list(i),
        "--repl-listen",
        `127.0.0.1:${replPorts[i]}`,
        ...args,
        ...extra,
      ],
      { port },
    );
    return { proc, port: proc.port };
  };
  // In parallel: a member that starts first finds the others by redialling.
  nodes.push(
    ...await Promise.all(
      Array.from({ length: n }, (_, i) => start(i, undefined, opts.member?.(i))),
    ),
  );
  const group: Group = {
    nodes,
    replPorts,
    relays,
    async restart(i, extra) {
      nodes[i] = await start(i, nodes[i].port, extra);
      return nodes[i];
    },
    async close() {
      await Promise.all(relays.flat().map((r) => r?.close()));
      await Promise.all(nodes.map((node) => node.proc.stop()));
    },
  };
  if (opts.wait !== false) {
    try {
      await linked(nodes);
    } catch (err) {
      await group.close();
      throw err;
    }
  }
  return group;
}

/** Wait until every node has every peer up. */
export async function linked(nodes: Node[], timeoutMs = 20_000): Promise<void> {
  await waitUntil(
    async () => {
      const all = await Promise.all(nodes.map((node) => replStats(node)));
      return all.every((s) => s.get("repl_link") === "up");
    },
    "every member linked to every other",
    timeoutMs,
  );
}

/**
 * Wait until every node among `nodes` is linked to the others of them and
 * has no unacknowledged changes for them (`repl_peer_<i>_lag_bytes` 0).
 */
export async function settledGroup(nodes: Node[], members: number[], timeoutMs = 20_000) {
  await waitUntil(
    async () => {
      const all = await Promise.all(nodes.map((node) => replStats(node)));
      return all.every((s, k) =>
        members.every((m, l) =>
          l === k ||
          (["up"].includes(s.get(`repl_peer_${m}_link`) ?? "") &&
            s.get(`repl_peer_${m}_lag_bytes`) === "0")
        )
      );
    },
    "the group to settle",
    timeoutMs,
  );
}

/** Cut the link between members i and j (i < j): refuse new connections, drop current ones. */
export function cut(group: Group, i: number, j: number): void {
  const r = group.relays[Math.min(i, j)][Math.max(i, j)];
  r.refuse(true);
  r.drop();
}

/** Heal the link between members i and j. */
export function heal(group: Group, i: number, j: number): void {
  group.relays[Math.min(i, j)][Math.max(i, j)].refuse(false);
}

/** Every node holds exactly what the first holds (value, flags, version, expiry). */
export async function sameEverywhere(nodes: Node[]): Promise<Map<string, string>> {
  const all = await Promise.all(nodes.map((n) => contents(n)));
  const diff: string[] = [];
  for (let k = 1; k < all.length; k++) {
    for (const [key, v] of all[0]) if (all[k].get(key) !== v) diff.push(`${key} @${k}`);
    for (const key of all[k].keys()) if (!all[0].has(key)) diff.push(`${key} only @${k}`);
  }
  equal(diff.length, 0, `members differ: ${diff.slice(0, 10).join(", ")}`);
  return all[0];
}

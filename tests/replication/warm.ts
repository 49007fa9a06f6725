/**
 * Helpers for warm-restart suites (pairs and groups): seeded picks, writes
 * and deletes recorded in a model of what the clients were told, and the
 * check that a node holds exactly that (0 stale, lost, resurrected keys).
 * @module
 */

import { equal, mulberry32, ok } from "../helpers/mod.ts";
import { client, contents, type Node } from "./pair.ts";

const enc = new TextEncoder();

/** A seeded PRNG (mulberry32): a failure replays with SEED=<n>. */
export function prng(seed: number): () => number {
  return mulberry32(seed);
}

/** The seed of this run (SEED=<n> replays one), logged. */
export function seedOf(): number {
  const seed = Number(Deno.env.get("SEED") ?? Math.floor(Math.random() * 1e9));
  console.log(`seed ${seed}`);
  return seed;
}

/** What the clients were told: key → value (null: deleted). */
export type Model = Map<string, string | null>;

let writeSeq = 0;

/** Set `keys` on `node` (pipelined) with fresh values of `size` bytes; records them in `model`. */
export async function setKeys(node: Node, keys: string[], model: Model, size = 40): Promise<void> {
  const c = await client(node);
  try {
    for (let i = 0; i < keys.length; i += 500) {
      const batch = keys.slice(i, i + 500).map((k) => {
        const v = `${++writeSeq}-${k}-`.padEnd(size, "x");
        return c.set(k, enc.encode(v)).then((stored) => {
          ok(stored, `set ${k}`);
          model.set(k, v);
        });
      });
      await Promise.all(batch);
    }
  } finally {
    c.close();
  }
}

/** Delete `keys` on `node`; records them in `model`. */
export async function deleteKeys(node: Node, keys: string[], model: Model): Promise<void> {
  const c = await client(node);
  try {
    for (let i = 0; i < keys.length; i += 500) {
      await Promise.all(
        keys.slice(i, i + 500).map(async (k) => {
          await c.delete(k);
          model.set(k, null);
        }),
      );
    }
  } finally {
    c.close();
  }
}

/** `node` holds exactly what the model says: counts of stale, lost and resurrected keys are 0. */
export async function matchesModel(node: Node, model: Model, what: string): Promise<void> {
  const got = await contents(node);
  let stale = 0, lost = 0, resurrected = 0, unknown = 0;
  const examples: string[] = [];
  for (const [k, v] of model) {
    const have = got.get(k);
    const value = have?.split(":").slice(3).join(":"); // flags:cas:exp:value
    if (v === null) {
      if (have !== undefined) {
        resurrected++;
        examples.push(`${k} resurrected`);
      }
    } else if (have === undefined) {
      lost++;
      examples.push(`${k} lost`);
    } else if (value !== v) {
      stale++;
      examples.push(`${k} stale: ${value?.slice(0, 30)} want ${v.slice(0, 30)}`);
    }
  }
  for (const k of got.keys()) if (!model.has(k)) unknown++;
  const summary =
    `${what}: stale ${stale}, lost ${lost}, resurrected ${resurrected}, unknown ${unknown}`;
  console.log(summary);
  equal(stale + lost + resurrected + unknown, 0, `${summary}\n${examples.slice(0, 10).join("\n")}`);
}

/** Random distinct picks of `n` elements of `xs`. */
export function pick<T>(xs: T[], n: number, rnd: () => number): T[] {
  const a = xs.slice();
  for (let i = a.length - 1; i > 0; i--) {
    const j = Math.floor(rnd() * (i + 1));
    [a[i], a[j]] = [a[j], a[i]];
  }
  return a.slice(0, n);
}

/** Wait until `node` exited, and return its code. */
export async function exitCode(node: Node): Promise<number> {
  const status = await node.proc.status;
  await node.proc.stop();
  return status.code;
}

/**
 * The members of a group issue versions that differ in their node bits (the
 * member's index in the list every member is given), across kill -9 and
 * restarts: a version (the CAS clients see) names one write. With equal
 * bits, writes of one key made on two members in the same millisecond got
 * the same version, the merge kept one value on every member under that
 * version, and a client holding the other's CAS could overwrite a value it
 * never read. Every member writes the same key at once, many times; every
 * CAS must be unique, and the value the members converge on must be the one
 * written with the CAS they hold.
 */

import { equal, ok } from "../helpers/assert.ts";
import { mulberry32 } from "../helpers/mod.ts";
import { Op } from "../../lib/protocol/mod.ts";
import { client } from "./pair.ts";
import { linked, sameEverywhere, settledGroup, startGroup } from "./group.ts";

const enc = new TextEncoder();

const envSeed = Number(Deno.env.get("MEMREP_CHAOS_SEED"));
for (const [n, restarts] of [[3, 10], [5, 8]]) {
  const seed = Number.isInteger(envSeed) && envSeed > 0
    ? envSeed
    : 1 + Math.floor(Math.random() * 1e9);
  Deno.test(`a group of ${n}: every member's versions have their own node bits, across ${restarts} kill -9 restarts (seed ${seed})`, async () => {
    const rnd = mulberry32(seed);
    const group = await startGroup(n);
    try {
      const writes = new Map<number, string>(); // CAS -> "key=value"
      let count = 0;
      for (let round = 0; round <= restarts; round++) {
        if (round > 0) {
          const i = Math.floor(rnd() * n);
          group.nodes[i].proc.kill("SIGKILL");
          await group.nodes[i].proc.status;
          await group.restart(i);
          await linked(group.nodes);
        }
        const clients = await Promise.all(group.nodes.map((node) => client(node)));
        try {
          for (let j = 0; j < 25; j++) {
            const key = `k${round}-${j}`;
            // Every member at once: same key, same millisecond as far as the scheduler allows.
            const cas = await Promise.all(clients.map(async (c, m) => {
              const value = `${m}-${round}-${j}`;
              const r = await c.request(
                enc.encode(`ms ${key} ${value.length} c\r\n${value}\r\n`),
                Op.MS,
              );
              ok(r.cas !== undefined, `seed ${seed}: ms c answered with its CAS`);
              const v = Number(r.cas);
              writes.set(v, `${key}=${value}`);
              count++;
              return v;
            }));
            const bits = new Set(cas.map((v) => v % 16));
            equal(
              bits.size,
              n,
              `seed ${seed}: round ${round}: node bits ${cas.map((v) => v % 16)}`,
            );
          }
        } finally {
          for (const c of clients) c.close();
        }
      }
      equal(writes.size, count, `seed ${seed}: CAS values given to two writes`);
      const members = group.nodes.map((_, i) => i);
      await settledGroup(group.nodes, members);
      const held = await sameEverywhere(group.nodes);
      for (const [key, entry] of held) {
        const [, cas, , value] = entry.split(":");
        equal(
          writes.get(Number(cas)),
          `${key}=${value}`,
          `seed ${seed}: ${key} held under CAS ${cas}`,
        );
      }
    } finally {
      await group.close();
    }
  });
}

/**
 * A write that arrives late (the link was down) must not come back on a
 * node where a newer write of the key has expired meanwhile: A sets the
 * keys, then B sets them again with a 1 s TTL (newer versions) while the
 * link hangs; once the link is back, A takes B's newer (expired) items and
 * drops its own, so B must refuse A's older ones too. Found by a chaos run
 * (flapping link, mixed ops): B kept A's overwritten value for good.
 */

import { equal } from "../helpers/assert.ts";
import { client, contents, sameContents, settled, withRelayedPair } from "./pair.ts";

const enc = new TextEncoder();
const KEYS = 40;

for (const threads of ["1", "2"]) {
  Deno.test(`-t ${threads}: an older write arriving after a newer one expired is refused: both nodes end without the key`, async () => {
    await withRelayedPair(["-t", threads], async (a, b, relay) => {
      const ca = await client(a), cb = await client(b);
      try {
        const keys = Array.from({ length: KEYS }, (_, i) => `late:${i}`);
        relay.pause();
        await Promise.all(keys.map((k) => ca.set(k, enc.encode(`old-A-${k}`))));
        await new Promise((r) => setTimeout(r, 20)); // B's writes get the newer versions
        await Promise.all(keys.map((k) => cb.set(k, enc.encode(`newer-B-${k}`), 0, 1)));
        await new Promise((r) => setTimeout(r, 2300)); // B's items expire on B
        // Half of them are found expired by client reads on B (any thread), the
        // other half only when A's change for them arrives.
        const reads = await Promise.all(
          Array.from({ length: 8 }, () => client(b)),
        );
        for (let i = 0; i < KEYS; i += 2) {
          equal((await reads[i % reads.length].get(keys[i])).size, 0, `${keys[i]} expired on B`);
        }
        for (const r of reads) r.close();
        relay.resume();
        await settled(a, b, 20_000);
        const [onA, onB] = await Promise.all([contents(a), contents(b)]);
        const left = (m: Map<string, string>) =>
          keys.filter((k) => m.has(k)).map((k) => `${k}=${m.get(k)?.split(":").pop()}`);
        equal(left(onA).join(" "), "", "A holds none of the keys (B's newer writes expired)");
        equal(
          left(onB).join(" "),
          "",
          "B holds none of the keys: A's older writes must not come back",
        );
        await sameContents(a, b);
      } finally {
        ca.close();
        cb.close();
      }
    });
  });
}

Deno.test("a touch made before the item expired, arriving after it expired on the peer, still revives it there", async () => {
  await withRelayedPair([], async (a, b, relay) => {
    const ca = await client(a), cb = await client(b);
    try {
      const keys = Array.from({ length: KEYS }, (_, i) => `touched:${i}`);
      await Promise.all(keys.map((k) => ca.set(k, enc.encode(`v-${k}`), 0, 4)));
      await settled(a, b);
      relay.pause();
      // Touched on A in time; B's copy expires before the touch reaches it.
      for (const k of keys) equal(await ca.touch(k, 1000), true, `${k} touched on A`);
      const deadline = Date.now() + 10_000;
      while ((await cb.get(keys)).size > 0) {
        if (Date.now() > deadline) throw new Error("B's copies did not expire");
        await new Promise((r) => setTimeout(r, 200));
      }
      relay.resume();
      await settled(a, b, 20_000);
      const onB = await contents(b);
      equal(keys.filter((k) => !onB.has(k)).join(" "), "", "B holds every touched key");
      await sameContents(a, b);
    } finally {
      ca.close();
      cb.close();
    }
  });
});

/**
 * With a shared secret the stream after the handshake is authenticated:
 * an on-path attacker who injects, alters or replays bytes gets the link
 * closed (`replication: bad MAC from H:P`) and none of it applied; the
 * pair re-pairs and converges. Sealed links replicate everything, full
 * copies and items larger than one record included, with any thread count.
 */

import { equal, ok } from "../helpers/assert.ts";
import { concatBytes, freePort, indexOfBytes, startRelay } from "../helpers/mod.ts";
import { client, contents, fill, replStat, sameContents, settled, startNode } from "./pair.ts";

const SECRET = "s3cret";
const enc = new TextEncoder();

/** Replace the first occurrence of `from` in `chunk` by `to` (same length); null if absent. */
function replaced(chunk: Uint8Array, from: string, to: string): Uint8Array | null {
  const at = indexOfBytes(chunk, enc.encode(from));
  if (at < 0) return null;
  const out = chunk.slice();
  out.set(enc.encode(to), at);
  return out;
}

Deno.test("tampering on the path (injected frame, flipped byte, replayed record) is rejected, applied nowhere, and the pair re-pairs", async () => {
  const replA = freePort();
  const args = ["--repl-secret", SECRET];
  const a = await startNode(replA, args);
  const relay = startRelay(replA);
  let b: Awaited<ReturnType<typeof startNode>> | undefined;
  try {
    await a.proc.waitForLog(/^replication: listen$/);
    b = await startNode(relay.port, args);
    await Promise.all([
      a.proc.waitForLog(/^replication: start/),
      b.proc.waitForLog(/^replication: start/),
    ]);
    await fill(a, "a", 300);
    await fill(b, "b", 300);
    await settled(a, b);
    const cb = await client(b);
    const attacks: Array<
      { key: string; value: string; tamper: (c: Uint8Array) => Uint8Array | null }
    > = [
      {
        // A forged change, as an attacker without the key would write it.
        key: "trigger",
        value: "t",
        tamper: (c) =>
          indexOfBytes(c, enc.encode("trigger")) < 0
            ? null
            : concatBytes(enc.encode("S injected 0 0 1 0 0 4\r\nEVIL\r\n"), c),
      },
      {
        key: "flipped",
        value: "GOOD-" + "x".repeat(500),
        tamper: (c) => replaced(c, "GOOD-", "EVIL-"),
      },
      {
        key: "replayed",
        value: "r",
        tamper: (c) => indexOfBytes(c, enc.encode("replayed")) < 0 ? null : concatBytes(c, c),
      },
    ];
    for (const attack of attacks) {
      const markA = a.proc.outputLines().length;
      let armed = true;
      relay.tamper((chunk, toTarget) => {
        if (!armed || !toTarget) return null;
        const out = attack.tamper(chunk);
        if (out) armed = false;
        return out;
      });
      ok(await cb.set(attack.key, enc.encode(attack.value)));
      await a.proc.waitForLog(/^replication: bad MAC from 127\.0\.0\.1:\d+$/, 10_000, markA);
      await a.proc.waitForLog(/^replication: close \(bad MAC/, 5000, markA);
      ok(!armed, "the attack happened");
      relay.tamper(null);
      await a.proc.waitForLog(/^replication: start/, 15_000, markA);
      await settled(a, b);
      const all = await sameContents(a, b);
      ok(!all.has("injected"), "the forged change is applied nowhere");
      ok(all.get(attack.key)?.endsWith(`:${attack.value}`), `${attack.key} as written on B`);
    }
    equal(await replStat(a, "repl_bad_macs"), attacks.length);
    equal((await contents(a)).size, 600 + attacks.length);
    cb.close();
  } finally {
    await relay.close();
    await Promise.all([a.proc.stop(), b?.proc.stop()]);
  }
});

for (const threads of [["-t", "1"], ["-t", "2"]]) {
  Deno.test(`with a secret and ${threads.join(" ")}: full copy and live stream, items larger than a record`, async () => {
    const args = ["--repl-secret", SECRET, "-I", "2m", "-m", "128", ...threads];
    const replPort = freePort();
    const a = await startNode(replPort, args);
    let b: Awaited<ReturnType<typeof startNode>> | undefined;
    try {
      await a.proc.waitForLog(/^replication: listen$/);
      await fill(a, "copy", 20_000);
      const ca = await client(a);
      const big = (seed: number) => new Uint8Array(700_000).map((_, i) => (i * seed + 7) & 255);
      for (let i = 0; i < 3; i++) ok(await ca.set(`big-a${i}`, big(i + 1)));
      b = await startNode(replPort, args);
      await Promise.all([
        a.proc.waitForLog(/^replication: start/, 20_000),
        b.proc.waitForLog(/^replication: start/, 20_000),
      ]);
      const cb = await client(b);
      await Promise.all([fill(a, "live-a", 2000), fill(b, "live-b", 2000)]);
      for (let i = 0; i < 3; i++) ok(await cb.set(`big-b${i}`, big(i + 11)));
      await settled(a, b);
      const all = await sameContents(a, b);
      equal(all.size, 24_006);
      equal((await cb.getOne("big-a2"))?.value.length, 700_000);
      equal(await replStat(a, "repl_bad_macs"), 0);
      equal(await replStat(b, "repl_bad_macs"), 0);
      ca.close();
      cb.close();
    } finally {
      await Promise.all([a.proc.stop(), b?.proc.stop()]);
    }
  });
}

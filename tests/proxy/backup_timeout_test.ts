/**
 * A backup that is up but times out (a hung link) loses the copies of the
 * deletes and overwrites sent meanwhile; its link may even deliver some of
 * them late, after newer ones. Once the primary dies, reads fall back to
 * that backup: it must never return a value deleted or overwritten while
 * it was away. The same for a backup that answers errors to them.
 */

import { equal, ok } from "../helpers/assert.ts";
import { connect, ignoreUnless } from "../helpers/mod.ts";
import { getMany, proxyStats, seeded, setMany, sleep, startPair } from "./cluster.ts";

const KEYS = 400;

const DELETE = new TextEncoder().encode("delete ");

/**
 * The backup answers `ERROR` to text deletes (as a backup behind a broken
 * middlebox would answer an error): they are not applied there.
 */
function failDeletes(chunk: Uint8Array, toTarget: boolean): Uint8Array | null {
  if (!toTarget) return null;
  let out: Uint8Array | null = null;
  for (let i = 0; i + DELETE.length <= chunk.length; i++) {
    if (DELETE.every((c, j) => chunk[i + j] === c)) {
      out ??= chunk.slice();
      out[i + 1] = 120; // "dxlete": an unknown command
    }
  }
  return out;
}

for (const seed of [1, 2, 3]) {
  Deno.test({
    name:
      `a backup that times out on deletes and overwrites never serves them stale (seed ${seed})`,
    ignore: ignoreUnless("backup timeouts", ["memcached"]),
    async fn() {
      const pair = await startPair({
        relay: "backup",
        proxyArgs: [
          "--timeout",
          "200",
          "--retry",
          "100",
          "--failure-limit",
          "1000", // the backup stays "up": only its copies fail
        ],
      });
      const { primary, toBackup: relay, proxy } = pair;
      try {
        const rand = seeded(seed);
        const keys = Array.from({ length: KEYS }, (_, i) => `bt${seed}:${i}`);
        const c = await connect(proxy.port);
        equal((await setMany(c, keys.map((k) => [k, `v0-${k}`]))).size, KEYS);
        // Acceptable answers per key: the last acknowledged value (undefined: deleted).
        const latest = new Map<string, string | undefined>(keys.map((k) => [k, `v0-${k}`]));
        // Flapping: hung, back, hung again; deletes and overwrites in every phase.
        for (let phase = 0; phase < 4; phase++) {
          relay.tamper(null);
          if (phase === 0) relay.pause();
          else if (phase === 1) {
            relay.resume();
            if (rand() < 0.5) relay.drop();
          } else if (phase === 2) relay.tamper(failDeletes);
          else relay.pause();
          const picked = keys.filter(() => rand() < 0.3);
          let script = "";
          const expect: [string, string | undefined][] = [];
          for (const k of picked) {
            if (rand() < 0.5) {
              script += `delete ${k}\r\n`;
              expect.push([k, undefined]);
            } else {
              const v = `v${phase + 1}-${k}`;
              script += `set ${k} 0 0 ${v.length}\r\n${v}\r\n`;
              expect.push([k, v]);
            }
          }
          await c.send(script);
          const reply = await c.readUntil((buf) => {
            let n = 0;
            for (let i = 1; i < buf.length; i++) {
              if (buf[i] === 10 && ++n === expect.length) return i + 1;
            }
            return -1;
          }, 20_000);
          const lines = new TextDecoder().decode(reply).split("\r\n");
          expect.forEach(([k, v], i) => {
            if (lines[i] === "STORED" || lines[i] === "DELETED" || lines[i] === "NOT_FOUND") {
              latest.set(k, v);
            }
          });
          // Let some copies time out while the link hangs.
          await sleep(300);
        }
        relay.resume();
        relay.tamper(null);
        // Wait for the proxy to have cleaned what the backup missed.
        const deadline = Date.now() + 10_000;
        for (;;) {
          const st = await proxyStats(proxy.port);
          const dirty = st.get(`backup:127.0.0.1:${relay.port}:dirty_keys`);
          if (dirty === "0") break;
          if (Date.now() > deadline) break; // checked below: reads must still be right
          await sleep(100);
        }
        const st = await proxyStats(proxy.port);
        const p = `backup:127.0.0.1:${relay.port}`;
        ok(Number(st.get(`${p}:retries`)) > 0, "the lost copies were retried");
        equal(st.get(`${p}:overflows`), "0");
        await sleep(500); // late bytes of the hung link land now, if at all
        primary.kill("SIGKILL");
        await primary.stop();
        const got = await getMany(c, keys);
        let stale = 0;
        const bad: string[] = [];
        for (const k of keys) {
          const v = got.get(k);
          if (v !== undefined && v !== latest.get(k)) {
            stale++;
            if (bad.length < 5) bad.push(`${k}=${v} (want ${latest.get(k) ?? "miss"})`);
          }
        }
        equal(stale, 0, `stale values through the backup: ${bad.join(", ")}`);
        await c.close();
      } finally {
        await pair.stop();
      }
    },
  });
}

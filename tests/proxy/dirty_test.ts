/**
 * A primary that returns after being marked down is cleaned of the keys
 * written to the backup meanwhile. Writes that keep failing over to the
 * backup while that cleaning runs must not be forgotten: the primary would
 * keep its older value and the proxy would serve it for good.
 */

import { equal } from "../helpers/assert.ts";
import { connect, ignoreUnless } from "../helpers/mod.ts";
import {
  type Cluster,
  getMany,
  keysOn,
  markedDown,
  proxyStats,
  seeded,
  setMany,
  sleep,
  startCluster,
  waitForState,
} from "./cluster.ts";

/** Keys written while the primary is stopped: their cleaning takes a while. */
const BULK = 15_000;
/** Keys overwritten, again and again, while the primary comes back. */
const HOT = 2_000;

/** Two primaries and a backup; a write waits up to 1 s. */
function startTwo(): Promise<Cluster> {
  return startCluster({
    servers: 2,
    backups: 1,
    proxyArgs: ["--timeout", "1000", "--retry", "100"],
  });
}

/**
 * The last acknowledged value per key, and the values of later writes that
 * failed (a failed write may still have been applied: either is right, an
 * older one is not).
 */
class Waves {
  #latest = new Map<string, string>();
  #maybe = new Map<string, string[]>();

  /** Notes a wave of writes; `stored` says which were acknowledged. */
  note(entries: readonly (readonly [string, string])[], stored: (k: string) => boolean): void {
    for (const [k, v] of entries) {
      if (stored(k)) {
        this.#latest.set(k, v);
        this.#maybe.delete(k);
      } else this.#maybe.set(k, [...(this.#maybe.get(k) ?? []), v]);
    }
  }

  /** The value `k` must read: its last acknowledged one, or `old-<k>`. */
  want(k: string): string {
    return this.#latest.get(k) ?? `old-${k}`;
  }

  /** Whether `v`, read for `k`, is its wanted value or one of its failed writes. */
  fine(k: string, v: string | undefined): boolean {
    return v === this.want(k) || (this.#maybe.get(k)?.includes(v as string) ?? false);
  }
}

for (const seed of [1, 2, 3]) {
  Deno.test({
    name: `writes during the cleaning of a returning primary are never served stale (seed ${seed})`,
    ignore: ignoreUnless("dirty keys during cleaning", ["memcached"]),
    async fn() {
      const cluster = await startTwo();
      const [s1, s2] = cluster.servers;
      let stopped = false;
      try {
        const rand = seeded(seed);
        const onM2 = keysOn([s1.port, s2.port], 1, `d${seed}:`, BULK + HOT);
        const bulk = onM2.slice(0, BULK), hot = onM2.slice(BULK);
        const c = await connect(cluster.proxy.port);
        equal((await setMany(c, hot.map((k) => [k, `old-${k}`]))).size, HOT);

        s2.kill("SIGSTOP");
        stopped = true;
        await markedDown(cluster.proxy.port, s2.port, hot[0]);
        equal((await setMany(c, bulk.map((k) => [k, `bulk-${k}`]))).size, BULK, "bulk to backup");

        s2.kill("SIGCONT");
        stopped = false;
        // Overwrite the hot keys in random waves from two connections until the proxy has
        // taken the primary back: some waves land while it cleans the bulk keys.
        const waves = new Waves();
        const c2 = await connect(cluster.proxy.port);
        let wave = 0;
        const deadline = Date.now() + 10_000;
        // The first wave goes at once: on a busy host the proxy may take the primary back
        // before a stats round trip sees it cleaning, and the waves must still meet it.
        for (;;) {
          const up = wave > 0 && (await proxyStats(cluster.proxy.port)).get(
                `server:127.0.0.1:${s2.port}:state`,
              ) === "up";
          if (up || Date.now() > deadline) break;
          wave++;
          const picked = hot.filter(() => rand() < 0.7);
          const half = Math.floor(picked.length / 2);
          const entries = picked.map((k) => [k, `w${wave}-${k}`] as const);
          const done = await Promise.all([
            setMany(c, entries.slice(0, half)),
            setMany(c2, entries.slice(half)),
          ]);
          waves.note(entries, (k) => done[0].has(k) || done[1].has(k));
        }
        await waitForState(cluster.proxy.port, "server", s2.port, "up");

        const got = await getMany(c, hot);
        const stale: string[] = [];
        for (const k of hot) {
          const v = got.get(k);
          if (!waves.fine(k, v)) stale.push(`${k}=${v} (want ${waves.want(k)})`);
        }
        equal(stale.length, 0, `stale after ${wave} waves: ${stale.slice(0, 5).join(", ")}`);
        const bulkGot = await getMany(c, bulk);
        const wrong = bulk.filter((k) => bulkGot.get(k) !== `bulk-${k}`);
        equal(wrong.length, 0, `bulk keys: ${wrong.slice(0, 5)}`);
        await c.close();
        await c2.close();
      } finally {
        if (stopped) s2.kill("SIGCONT");
        await cluster.stop();
      }
    },
  });
}

for (const seed of [4, 5]) {
  Deno.test({
    name: `a primary stopped again while it is cleaned: still nothing stale (seed ${seed})`,
    ignore: ignoreUnless("dirty keys, stopped mid-clean", ["memcached"]),
    async fn() {
      const cluster = await startTwo();
      const [s1, s2] = cluster.servers;
      let stopped = false;
      try {
        const rand = seeded(seed);
        const onM2 = keysOn([s1.port, s2.port], 1, `m${seed}:`, BULK + HOT);
        const bulk = onM2.slice(0, BULK), hot = onM2.slice(BULK);
        const c = await connect(cluster.proxy.port);
        equal((await setMany(c, hot.map((k) => [k, `old-${k}`]))).size, HOT);
        const waves = new Waves();
        let wave = 0;
        const overwrite = async () => {
          wave++;
          const entries = hot.filter(() => rand() < 0.5).map((k) => [k, `w${wave}-${k}`] as const);
          const done = await setMany(c, entries);
          waves.note(entries, (k) => done.has(k));
        };

        s2.kill("SIGSTOP");
        stopped = true;
        await markedDown(cluster.proxy.port, s2.port, hot[0]);
        equal((await setMany(c, bulk.map((k) => [k, `bulk-${k}`]))).size, BULK);
        // Back, and stopped again after a random moment (often while the bulk keys are
        // cleaned), overwriting all along; then back for good.
        s2.kill("SIGCONT");
        stopped = false;
        const t0 = Date.now();
        const pause = 50 + Math.floor(rand() * 250);
        while (Date.now() - t0 < pause) await overwrite();
        s2.kill("SIGSTOP");
        stopped = true;
        for (let i = 0; i < 3; i++) await overwrite();
        await sleep(1200); // long enough to time out whatever was sent to it
        s2.kill("SIGCONT");
        stopped = false;
        // Overwrite until the proxy takes it back: the last waves land while it is cleaned.
        const state = `server:127.0.0.1:${s2.port}:state`;
        const t1 = Date.now();
        while ((await proxyStats(cluster.proxy.port)).get(state) !== "up") {
          if (Date.now() - t1 > 10_000) break;
          await overwrite();
        }
        await waitForState(cluster.proxy.port, "server", s2.port, "up");

        const got = await getMany(c, hot);
        const stale = hot.filter((k) => !waves.fine(k, got.get(k)));
        equal(stale.length, 0, `stale after ${wave} waves: ${stale.slice(0, 5)}`);
        const bulkGot = await getMany(c, bulk);
        equal(bulk.filter((k) => bulkGot.get(k) !== `bulk-${k}`).length, 0, "bulk keys");
        await c.close();
      } finally {
        if (stopped) s2.kill("SIGCONT");
        await cluster.stop();
      }
    },
  });
}

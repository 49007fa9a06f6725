/**
 * Keys a primary lost (its link hung: writes timed out and went to the
 * backup) must be cleaned and served by it again even when a write of each
 * goes to the backup during every cleaning delete (a slow link, busy
 * clients). Such a write skips the primary because the key is dirty there,
 * and that skip used to count as a new change: the pass that deleted the key
 * kept it dirty, so it never became clean (dirty_keys stuck above 0 with the
 * primary up, the backup the only copy). Found by the pipeline model (seed
 * 812202477, after kill, holdLinks and refuse of the primary's relay).
 */

import { equal, waitUntil } from "../helpers/assert.ts";
import { connect, ignoreUnless, type TestConn } from "../helpers/mod.ts";
import { getMany, proxyStats, setMany, startPair, waitForState } from "./cluster.ts";

const NAME =
  "keys lost on a hung primary are cleaned while clients write them during every delete: losing the backup then loses none";

Deno.test({
  name: NAME,
  ignore: ignoreUnless(NAME, ["memcached"]),
  async fn() {
    const pair = await startPair({
      relay: "primary",
      proxyArgs: ["--timeout", "300", "--retry", "100"],
    });
    const { backup, toPrimary: relay, proxy } = pair;
    const conns: TestConn[] = [];
    let stop = false;
    const runs: Promise<void>[] = [];
    try {
      // Two writers, each with its own keys: the last value each stored is the latest.
      const latest = new Map<string, string>();
      const writers = [0, 1].map((w) => Array.from({ length: 10 }, (_, i) => `busy:${w}:${i}`));
      for (let w = 0; w < writers.length; w++) conns.push(await connect(proxy.port));
      let round = 0;
      const writeRound = async (w: number) => {
        const entries = writers[w].map((k) => [k, `v${++round}-${k}`] as const);
        const stored = await setMany(conns[w], entries);
        for (const [k, v] of entries) if (stored.has(k)) latest.set(k, v);
      };
      await writeRound(0);
      await writeRound(1);
      // The link hangs: the writes time out there (lost) and go to the backup.
      relay.pause();
      await Promise.all([writeRound(0), writeRound(1)]);
      await waitForState(proxy.port, "server", relay.port, "down");
      // Back, but slow: each cleaning delete takes a while, and writes (to the backup) never pause.
      relay.setLatency(30);
      relay.resume();
      for (let w = 0; w < writers.length; w++) {
        runs.push((async () => {
          while (!stop) await writeRound(w);
        })());
      }
      const name = `server:127.0.0.1:${relay.port}`;
      let st = new Map<string, string>();
      await waitUntil(
        async () => {
          st = await proxyStats(proxy.port);
          return st.get(`${name}:state`) === "up" && st.get(`${name}:dirty_keys`) === "0";
        },
        "the primary up with no dirty keys",
        20_000,
      ).catch((e) => {
        throw new Error(
          `${e.message}: state ${st.get(`${name}:state`)}, dirty_keys ${
            st.get(`${name}:dirty_keys`)
          }`,
        );
      });
      // Clean: the writes since landed on the primary; it alone must answer them now. (A
      // write that timed out on the slow link meanwhile made its key dirty again: with the
      // backup gone it would answer SERVER_ERROR, never a stale value. Let that one clean.)
      stop = true;
      await Promise.all(runs);
      await waitUntil(
        async () => (await proxyStats(proxy.port)).get(`${name}:dirty_keys`) === "0",
        "the primary clean once the writers stopped",
        20_000,
      );
      backup.kill("SIGKILL");
      await backup.stop();
      const keys = writers.flat();
      const got = await getMany(conns[0], keys);
      const wrong = keys.filter((k) => got.get(k) !== latest.get(k)).map((k) =>
        `${k}=${got.get(k)} (want ${latest.get(k)})`
      );
      equal(
        wrong.join(", "),
        "",
        `every key reads its last write from the primary: ${wrong.join(", ")}`,
      );
    } finally {
      stop = true;
      await Promise.allSettled(runs);
      for (const c of conns) await c.close();
      await pair.stop();
    }
  },
});

/**
 * gat, gats and mg with T change an item's expiry: the backups must get
 * the new one too, or after the primary's copy expires a read falls back
 * to a backup still holding the item and brings it back (and repairs it
 * onto the primary).
 */

import { equal, eventually } from "../helpers/assert.ts";
import { connect, ignoreUnless, metaEnd, retrievalEnd } from "../helpers/mod.ts";
import { directGet, setValue, sleep, startCluster } from "./cluster.ts";

Deno.test({
  name: "proxy: gat, gats, multi-key gat and mg T shorten the expiry on the backups too",
  ignore: ignoreUnless("proxy gat backups", ["memcached"]),
  async fn() {
    const cluster = await startCluster({ servers: 2, backups: 1 });
    try {
      const c = await connect(cluster.proxy.port);
      const keys = Array.from({ length: 12 }, (_, i) => `gb:${i}`);
      for (const k of keys) equal(await setValue(c, k, "v", 0, 100), "STORED\r\n");
      const bk = cluster.backups[0].port;
      for (const k of keys) await eventually(() => directGet(bk, k), "v", `${k} on the backup`);
      // One key each way: gat, gats, a multi-key gat, mg T.
      await c.request(`gat 1 ${keys[0]}`, retrievalEnd);
      await c.request(`gats 1 ${keys[1]}`, retrievalEnd);
      await c.request(`gat 1 ${keys.slice(2, 8).join(" ")}`, retrievalEnd);
      equal(await c.request(`mg ${keys[8]} T1`, metaEnd), "HD\r\n");
      await sleep(2200);
      let resurrected = 0;
      for (const k of keys.slice(0, 9)) {
        if (await directGet(bk, k) !== undefined) resurrected++;
        const r = await c.request(`get ${k}`, retrievalEnd);
        if (r !== "END\r\n") resurrected++;
      }
      equal(resurrected, 0, "expired items that came back (through the proxy or on the backup)");
      // The untouched ones are still everywhere.
      for (const k of keys.slice(9)) equal(await directGet(bk, k), "v");
      await c.close();
    } finally {
      await cluster.stop();
    }
  },
});

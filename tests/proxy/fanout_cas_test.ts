/**
 * md with a CAS that does not match: the primary answers EX and keeps the
 * item, so the backups must keep it too (a fallback read after the primary
 * restarts would otherwise miss an item that was never deleted), and the
 * client gets EX, not the backup's HD.
 */

import { equal, eventually } from "../helpers/assert.ts";
import { connect, ignoreUnless, metaEnd } from "../helpers/mod.ts";
import { directGet, startCluster } from "./cluster.ts";

Deno.test({
  name: "proxy: md with a wrong CAS answers EX and deletes nowhere",
  ignore: ignoreUnless("proxy md CAS", ["memcached"]),
  async fn() {
    const cluster = await startCluster({ servers: 2, backups: 1 });
    try {
      const c = await connect(cluster.proxy.port);
      let wrong = 0;
      for (let i = 0; i < 20; i++) {
        const k = `mdc:${i}`;
        const set = await c.request(`ms ${k} 1 c\r\nv`, metaEnd);
        const cas = Number(/c(\d+)/.exec(set)?.[1]);
        if (await c.request(`md ${k} C${cas + 1000}`, metaEnd) !== "EX\r\n") wrong++;
        await eventually(
          () => directGet(cluster.backups[0].port, k),
          "v",
          `${k} kept on the backup`,
        );
        if (await c.request(`mg ${k} v`, metaEnd) !== "VA 1\r\nv\r\n") wrong++;
        if (await c.request(`md ${k} C${cas}`, metaEnd) !== "HD\r\n") wrong++;
        await eventually(() => directGet(cluster.backups[0].port, k), undefined, `${k} deleted`);
      }
      equal(wrong, 0, "wrong replies");
      await c.close();
    } finally {
      await cluster.stop();
    }
  },
});

/**
 * The proxy's memory per client connection, measured as its RSS: a client
 * that pipelines thousands of gets of a large value and never reads must
 * cost a bounded amount (the replies of requests already sent to a backend
 * are kept whatever their size, so the proxy may have only as many in
 * flight as its output bound holds), text and binary, while other clients
 * are served.
 * @module
 */

import { connect, equal, ignoreUnless, ok, waitUntil } from "../helpers/mod.ts";
import { OP, packet } from "../helpers/binary.ts";
import { startCluster } from "./cluster.ts";

const MB = 1048576;
const VALUE = "u".repeat(200 * 1024);

async function rss(pid: number): Promise<number> {
  const status = await Deno.readTextFile(`/proc/${pid}/status`);
  const kb = /VmRSS:\s+(\d+)\s+kB/.exec(status);
  if (!kb) throw new Error(`no VmRSS in /proc/${pid}/status`);
  return Number(kb[1]) * 1024;
}

for (const protocol of ["text", "binary"] as const) {
  const NAME =
    `proxy bounds a ${protocol} client that pipelines 4,000 gets of 200 KB and never reads`;
  Deno.test({
    name: NAME,
    ignore: Deno.build.os !== "linux" || ignoreUnless(NAME, ["memcached"]),
    async fn() {
      const cluster = await startCluster({ servers: 1, backups: 1 });
      const other = await connect(cluster.proxy.port);
      const backend = await connect(cluster.servers[0].port);
      let hog: Deno.Conn | undefined;
      try {
        equal(await other.request(`set big 0 0 ${VALUE.length}\r\n${VALUE}`), "STORED\r\n");
        const before = await rss(cluster.proxy.pid);
        const one = protocol === "text"
          ? new TextEncoder().encode("get big\r\n")
          : packet({ op: OP.GETK, key: "big" });
        const batch = new Uint8Array(one.length * 4000);
        for (let i = 0; i < 4000; i++) batch.set(one, i * one.length);
        hog = await Deno.connect({ hostname: "127.0.0.1", port: cluster.proxy.port });
        // Never awaited to the end: the proxy stops reading once its output bound is reached.
        hog.write(batch).catch(() => {});
        let gets = -1, peak = 0;
        await waitUntil(
          async () => {
            peak = Math.max(peak, await rss(cluster.proxy.pid));
            const now = Number((await backend.stats()).get("cmd_get"));
            const stuck = now === gets;
            gets = now;
            await new Promise((r) => setTimeout(r, 400));
            return stuck;
          },
          "the non-reading client to stall",
          15_000,
        );
        peak = Math.max(peak, await rss(cluster.proxy.pid));
        ok(gets < 1000, `gets sent to the backend while their replies were unread: ${gets}`);
        ok(
          peak - before < 150 * MB,
          `proxy RSS grew ${((peak - before) / MB).toFixed(0)} MB for 4,000 unread 200 KB replies`,
        );
        equal(
          await other.request("get big", "END\r\n"),
          `VALUE big 0 ${VALUE.length}\r\n${VALUE}\r\nEND\r\n`,
        );
      } finally {
        hog?.close();
        await Promise.all([other.close(), backend.close()]);
        await cluster.stop();
      }
    },
  });
}

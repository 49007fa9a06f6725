/**
 * The proxy's memory under many clients that pipeline large gets and never
 * read, for the whole process: each connection's own bound (8 MB unsent and
 * the replies in flight) times 100 connections was ~2 GB; past the process's
 * budget (--max-buffered-mb, 256 MB by default) a connection that holds
 * more than 256 KB sends nothing more until its client reads. A reading
 * client gets memcached's replies meanwhile, the budget's count goes back
 * to 0 once the hogs are gone, and the next ones reuse what they took.
 * @module
 */

import {
  closeHogs,
  hogItem,
  openHogs,
  readerGets,
  readExactly,
  rss,
  settledPeak,
  storeHogItems,
} from "../helpers/unread.ts";
import { connect, equal, ignoreUnless, ok, type TestConn, waitUntil } from "../helpers/mod.ts";
import { startCluster } from "./cluster.ts";

const MB = 1048576;
const HOGS = 100;

/** 40 pipelined gets through the proxy and straight to memcached: the same bytes back. */
async function pipelinedReader(proxyPort: number, memcachedPort: number): Promise<void> {
  const [batch, total] = readerGets(40);
  const got: Uint8Array[] = [];
  for (const port of [proxyPort, memcachedPort]) {
    const c = await Deno.connect({ hostname: "127.0.0.1", port });
    try {
      const sent = c.write(batch);
      got.push(await readExactly(c, total));
      await sent;
      await c.write(new TextEncoder().encode("version\r\n"));
      const tail = new TextDecoder().decode(await readExactly(c, 16));
      equal(tail, "VERSION 1.6.18\r\n");
    } finally {
      c.close();
    }
  }
  ok(got[0].every((b, i) => b === got[1][i]), "the proxy's replies differ from memcached's");
}

const NAME =
  "proxy bounds what 100 clients that pipeline large gets and never read cost the process together; a reader gets memcached's replies meanwhile";
Deno.test({
  name: NAME,
  ignore: Deno.build.os !== "linux" || ignoreUnless(NAME, ["memcached"]),
  async fn() {
    const cluster = await startCluster({
      servers: 1,
      backups: 1,
      proxyArgs: ["--timeout", "5000", "--retry", "200"],
    });
    const conns: TestConn[] = [];
    try {
      const reader = await connect(cluster.proxy.port);
      const direct = await connect(cluster.servers[0].port);
      conns.push(reader, direct);
      await storeHogItems(reader);
      const ask = "get hog:3 hog:4 nope hog:5";
      const want = await direct.request(ask, "END\r\n");
      const check = async () => equal(await reader.request(ask, "END\r\n", 10_000), want);
      const stat = async (name: string) => Number((await reader.stats("proxy")).get(name));
      const pid = cluster.proxy.pid;
      const base = await rss(pid);
      let counted = 0;
      for (let round = 0; round < 3; round++) {
        const hogs = await openHogs(cluster.proxy.port, HOGS);
        let peak: number;
        try {
          peak = await settledPeak(pid, async () => {
            await check();
            counted = Math.max(counted, await stat("buffered_bytes"));
          }) - base;
          // A client that pipelines large gets and reads them meanwhile gets them all, as
          // memcached sends them (parts, pauses and all).
          if (round === 0) await pipelinedReader(cluster.proxy.port, cluster.servers[0].port);
        } finally {
          closeHogs(hogs);
        }
        // RSS: the budget, a few copies of each reply on its way (backend reads, the
        // multi-get's assembly, the output), about 550 MB; each connection's own bound
        // alone was ~2 GB. Later rounds reuse the first one's memory.
        ok(
          peak < 1024 * MB,
          `the proxy's RSS grew ${
            (peak / MB).toFixed(0)
          } MB by round ${round} of ${HOGS} unread clients`,
        );
        const limit = await stat("buffered_limit");
        equal(limit, 256 * MB);
        // What the connections hold is counted (replies not written, those asked for at the
        // largest reply so far): the budget, plus what each may hold and still ask (256 KB)
        // and one more reply of 10 values.
        ok(
          counted < limit + HOGS * (256 * 1024 + 10 * 256 * 1024),
          `the proxy counted ${(counted / MB).toFixed(0)} MB held (round ${round})`,
        );
        await waitUntil(
          async () => await stat("curr_connections") < 10 && await stat("buffered_bytes") === 0,
          "the hogs' connections to close and what they held to be released",
          15_000,
        );
      }
      await check();
    } finally {
      await Promise.all(conns.map((c) => c.close()));
      await cluster.stop();
    }
  },
});

const SMALL_FIRST =
  "proxy bounds a client whose first reply is small that then pipelines 4,000 gets of 256 KB and never reads";
Deno.test({
  name: SMALL_FIRST,
  ignore: Deno.build.os !== "linux" || ignoreUnless(SMALL_FIRST, ["memcached"]),
  async fn() {
    // The window was sized by the largest reply so far: after an 8-byte STORED it let 4,096
    // gets be in flight, whose replies must all be kept (1 GB here, 1.5 GB of RSS).
    const cluster = await startCluster({ servers: 1, backups: 1 });
    const conns: TestConn[] = [];
    let hog: Deno.Conn | undefined;
    try {
      const other = await connect(cluster.proxy.port);
      const backend = await connect(cluster.servers[0].port);
      conns.push(other, backend);
      await storeHogItems(other);
      const [key, value] = hogItem(7);
      const before = await rss(cluster.proxy.pid);
      hog = await Deno.connect({ hostname: "127.0.0.1", port: cluster.proxy.port });
      const enc = new TextEncoder();
      await hog.write(enc.encode("set small 0 0 1\r\nx\r\n"));
      const stored = new Uint8Array(8);
      equal(await hog.read(stored), 8);
      const gets0 = Number((await backend.stats()).get("cmd_get"));
      hog.write(enc.encode(`get ${key}\r\n`.repeat(4000))).catch(() => {});
      let gets = -1;
      const peak = await settledPeak(cluster.proxy.pid, async () => {
        gets = Number((await backend.stats()).get("cmd_get")) - gets0;
        equal(
          await other.request(`get ${key}`, "END\r\n", 30_000),
          `VALUE ${key} 0 ${value.length}\r\n${value}\r\nEND\r\n`,
        );
      }) - before;
      // 8 MB unsent and 8 MB in flight at most (a few copies of each): well under 200 MB.
      ok(peak < 200 * MB, `proxy RSS grew ${(peak / MB).toFixed(0)} MB (${gets} gets sent)`);
      ok(gets < 1000, `gets sent to the backend while their replies were unread: ${gets}`);
    } finally {
      hog?.close();
      await Promise.all(conns.map((c) => c.close()));
      await cluster.stop();
    }
  },
});

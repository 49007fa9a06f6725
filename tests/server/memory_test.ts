/**
 * `memrep serve`'s memory per connection, measured as the process's RSS
 * (/proc/<pid>/status VmRSS): clients that pipeline large gets and never
 * read, and bursts of thousands of connections (issue 9, items 7 and 8).
 * Bounds are generous; what they catch is growth with the batch size or
 * with the number of connections ever made.
 * @module
 */

import { connect, equal, ok, startMemrep, waitUntil } from "../helpers/mod.ts";

const MB = 1048576;

/** Resident set size of a process, in bytes. */
async function rss(pid: number): Promise<number> {
  const status = await Deno.readTextFile(`/proc/${pid}/status`);
  const kb = /VmRSS:\s+(\d+)\s+kB/.exec(status);
  if (!kb) throw new Error(`no VmRSS in /proc/${pid}/status`);
  return Number(kb[1]) * 1024;
}

const linux = Deno.build.os === "linux";

Deno.test({
  name:
    "serve bounds the output of clients that pipeline 1,000 gets of 256 KB and never read, and serves others meanwhile",
  ignore: !linux,
  async fn() {
    const server = await startMemrep(["serve", "-m", "64", "-U", "0"]);
    const value = "v".repeat(256 * 1024);
    const other = await connect(server.port);
    const hogs: Deno.Conn[] = [];
    try {
      equal(await other.request(`set big 0 0 ${value.length}\r\n${value}`), "STORED\r\n");
      equal(
        await other.request("get big", "END\r\n"),
        `VALUE big 0 ${value.length}\r\n${value}\r\nEND\r\n`,
      );
      const before = await rss(server.pid);
      const batch = new TextEncoder().encode("get big\r\n".repeat(1000));
      for (let i = 0; i < 2; i++) {
        const c = await Deno.connect({ hostname: "127.0.0.1", port: server.port });
        await c.write(batch);
        hogs.push(c);
      }
      // Until the hogs are stuck on their own sockets: their gets stop being counted.
      let gets = -1, peak = 0;
      await waitUntil(
        async () => {
          peak = Math.max(peak, await rss(server.pid));
          const now = Number((await other.stats()).get("cmd_get"));
          const stuck = now === gets;
          gets = now;
          await new Promise((r) => setTimeout(r, 300));
          return stuck;
        },
        "the non-reading clients to stall",
        15_000,
      );
      peak = Math.max(peak, await rss(server.pid));
      ok(gets < 1000, `pipelined gets executed while their replies were unread: ${gets}`);
      ok(
        peak - before < 200 * MB,
        `RSS grew ${((peak - before) / MB).toFixed(0)} MB for 2 x 1,000 unread 256 KB replies`,
      );
      // Another connection is served normally meanwhile.
      equal(
        await other.request("get big", "END\r\n"),
        `VALUE big 0 ${value.length}\r\n${value}\r\nEND\r\n`,
      );
      for (const c of hogs.splice(0)) c.close();
      await waitUntil(
        async () => (await rss(server.pid)) - before < 100 * MB,
        "memory to come back after the clients closed",
      );
    } finally {
      for (const c of hogs) c.close();
      await other.close();
      await server.stop();
    }
  },
});

Deno.test({
  name: "serve memory plateaus over bursts of 5,000 connections",
  ignore: !linux,
  async fn() {
    const server = await startMemrep(["serve", "-m", "64", "-c", "20000", "-U", "0"]);
    const request = new TextEncoder().encode("get k\r\n");
    try {
      const start = await rss(server.pid);
      const after: number[] = [];
      for (let burst = 0; burst < 8; burst++) {
        const conns: Deno.Conn[] = [];
        try {
          for (let i = 0; i < 5000; i += 250) {
            conns.push(
              ...await Promise.all(
                Array.from(
                  { length: 250 },
                  () => Deno.connect({ hostname: "127.0.0.1", port: server.port }),
                ),
              ),
            );
          }
          // Every connection is served once (it holds its buffers), then all close.
          await Promise.all(conns.map(async (c) => {
            await c.write(request);
            const buf = new Uint8Array(16);
            let got = 0;
            while (got < 5) got += (await c.read(buf.subarray(got))) ?? 5;
            equal(new TextDecoder().decode(buf.subarray(0, 5)), "END\r\n");
          }));
        } finally {
          for (const c of conns) c.close();
        }
        const c = await connect(server.port);
        await waitUntil(
          async () => Number((await c.stats()).get("curr_connections")) <= 2,
          "the burst's connections to be closed",
        );
        await c.close();
        after.push(await rss(server.pid));
      }
      const mb = (n: number) => (n / MB).toFixed(0);
      const report = `RSS start ${mb(start)} MB, after each burst ${after.map(mb).join(" ")} MB`;
      ok(after[7] - start < 300 * MB, `grew without bound: ${report}`);
      ok(after[7] - after[2] < 100 * MB, `no plateau from burst 3 to 8: ${report}`);
    } finally {
      await server.stop();
    }
  },
});

Deno.test({
  name:
    "serve keeps a connection sending a 100 MB get line with an over-long key, with bounded memory, and answers at the newline",
  ignore: !linux,
  async fn() {
    const server = await startMemrep(["serve", "-m", "64", "-U", "0"]);
    const c = await connect(server.port);
    try {
      const before = await rss(server.pid);
      await c.send("get ");
      const chunk = new Uint8Array(1048576).fill(107); // "k"
      let peak = 0;
      for (let i = 0; i < 100; i++) {
        await c.send(chunk);
        if (i % 10 === 0) peak = Math.max(peak, await rss(server.pid));
      }
      equal(c.buffered.length, 0, "no reply before the newline");
      equal(
        await c.request("\r\nversion", "VERSION 1.6.18\r\n", 10_000),
        "CLIENT_ERROR bad command line format\r\nVERSION 1.6.18\r\n",
      );
      peak = Math.max(peak, await rss(server.pid));
      ok(peak - before < 64 * MB, `RSS grew ${((peak - before) / MB).toFixed(0)} MB`);
    } finally {
      await c.close();
      await server.stop();
    }
  },
});

Deno.test({
  name:
    "serve bounds one get of 2,000 keys of 200 KB that is never read, and serves others meanwhile",
  ignore: !linux,
  async fn() {
    const server = await startMemrep(["serve", "-m", "64", "-U", "0"]);
    const value = "w".repeat(200 * 1024);
    const other = await connect(server.port);
    let hog: Deno.Conn | undefined;
    try {
      equal(await other.request(`set big 0 0 ${value.length}\r\n${value}`), "STORED\r\n");
      const before = await rss(server.pid);
      hog = await Deno.connect({ hostname: "127.0.0.1", port: server.port });
      await hog.write(new TextEncoder().encode(`get${" big".repeat(2000)}\r\n`));
      // Until the get stalls on the unread socket: its keys stop being counted.
      let gets = -1, peak = 0;
      await waitUntil(
        async () => {
          peak = Math.max(peak, await rss(server.pid));
          const now = Number((await other.stats()).get("cmd_get"));
          const stuck = now === gets;
          gets = now;
          await new Promise((r) => setTimeout(r, 300));
          return stuck;
        },
        "the non-reading client to stall",
        15_000,
      );
      peak = Math.max(peak, await rss(server.pid));
      ok(gets < 1000, `keys fetched while the reply was unread: ${gets}`);
      ok(
        peak - before < 150 * MB,
        `RSS grew ${((peak - before) / MB).toFixed(0)} MB for one unread 400 MB get`,
      );
      equal(
        await other.request("get big", "END\r\n"),
        `VALUE big 0 ${value.length}\r\n${value}\r\nEND\r\n`,
      );
    } finally {
      hog?.close();
      await other.close();
      await server.stop();
    }
  },
});

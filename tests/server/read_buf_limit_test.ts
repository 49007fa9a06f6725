/**
 * `-o read_buf_mem_limit` (memcached's t/conn-limits.t, read buffer part):
 * with one thread and 1 MB the thread has 64 read buffers of 16 KB; each
 * connection holding a partial request keeps one, the next ones to send
 * bytes are closed and counted as `read_buf_oom`. Same checks on memrep and
 * real memcached; stored data stays, and buffers come back on close.
 * memcached's response objects draw on the same buffers (a thread that has
 * replied keeps some), so there a few more connections are refused; memrep
 * counts read buffers only, and refuses exactly the ones beyond 64.
 * @module
 */

import {
  connect,
  equal,
  ignoreUnless,
  ok,
  type ProcessHandle,
  startMemcached,
  startMemrep,
  type TestConn,
  waitUntil,
} from "../helpers/mod.ts";

const UNITS = 64; // 1 MB / 1 thread / 16 KB
const EXTRA = 6;

/** Runs the flood; returns how many connections were refused. */
async function checkReadBufLimit(server: ProcessHandle, seed: number): Promise<number> {
  const admin = await connect(server.port);
  const key = `keep_${seed}`;
  equal(await admin.request(`set ${key} 0 0 ${String(seed).length}\r\n${seed}\r\n`), "STORED\r\n");
  equal((await admin.stats("settings")).get("read_buf_mem_limit"), "1048576");
  equal((await admin.stats()).get("read_buf_oom"), "0");
  await admin.close(); // its buffer goes back
  const conns: TestConn[] = [];
  let refused = 0;
  try {
    for (let i = 0; i < UNITS + EXTRA; i++) {
      const c = await connect(server.port);
      conns.push(c);
      await c.send("set foo 0 0 2\r\n"); // a partial set keeps its read buffer
    }
    const closed = () => conns.filter((c) => c.eof).length;
    await waitUntil(() => closed() >= EXTRA, "the refused connections to close");
    await new Promise((r) => setTimeout(r, 300));
    refused = closed();
    ok(refused <= 2 * EXTRA, `at most a few more refused: ${refused}`);
    equal(conns.filter((c) => c.eof && c.buffered.length > 0).length, 0, "closed without a reply");
    equal(conns.slice(0, UNITS - EXTRA).filter((c) => c.eof).length, 0, "the first ones stay");
  } finally {
    await Promise.all(conns.map((c) => c.close()));
  }
  // Everything closed: buffers are free again, and nothing stored was lost.
  let oom = "";
  await waitUntil(async () => {
    try {
      const c = await connect(server.port);
      try {
        oom = (await c.stats()).get("read_buf_oom") ?? "";
        return true;
      } finally {
        await c.close();
      }
    } catch {
      return false;
    }
  }, "a stats connection");
  equal(oom, String(refused));
  const c = await connect(server.port);
  equal(
    await c.request(`get ${key}\r\n`, "END\r\n"),
    `VALUE ${key} 0 ${String(seed).length}\r\n${seed}\r\nEND\r\n`,
  );
  await c.close();
  return refused;
}

Deno.test("-o read_buf_mem_limit closes connections beyond the thread's read buffers", async () => {
  const server = await startMemrep(["serve", "-t", "1", "-o", "read_buf_mem_limit=1"]);
  try {
    equal(await checkReadBufLimit(server, Math.floor(Math.random() * 1e9)), EXTRA);
  } finally {
    await server.stop();
  }
});

const REF = "read_buf_mem_limit checks hold on real memcached";

Deno.test({
  name: REF,
  ignore: ignoreUnless(REF, ["memcached"]),
  async fn() {
    const server = await startMemcached(["-t", "1", "-o", "read_buf_mem_limit=1"]);
    try {
      await checkReadBufLimit(server, Math.floor(Math.random() * 1e9));
    } finally {
      await server.stop();
    }
  },
});

Deno.test("read_buf_mem_limit wraps in 32 bits as memcached's unsigned int (4096 MB: no limit)", async () => {
  for (const [mb, shown] of [["4096", "0"], ["4097", "1048576"], ["0", "0"]]) {
    const server = await startMemrep(["serve", "-t", "1", "-o", `read_buf_mem_limit=${mb}`]);
    try {
      const c = await connect(server.port);
      equal((await c.stats("settings")).get("read_buf_mem_limit"), shown);
      await c.close();
    } finally {
      await server.stop();
    }
  }
});

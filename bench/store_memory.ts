/**
 * Memory and speed of lib/store against real memcached: 1M items of 14-byte
 * keys and 100-byte values. Prints RSS of this process after filling the
 * store, memcached's VmRSS after loading the same items over a socket, and
 * their ratio; then find+bump and alloc+link rates.
 *
 *   deno run -A bench/store_memory.ts [items]
 * @module
 */

import { Store } from "../lib/store/mod.ts";

const ITEMS = Number(Deno.args[0] ?? 1_000_000);
const VALUE = 100;
const MEMCACHED = "/usr/bin/memcached";

/** Writes the 14-byte key "key:%010d" for `i` into `buf` at `at`. */
function writeKey(buf: Uint8Array, at: number, i: number): void {
  buf[at] = 107; // k
  buf[at + 1] = 101; // e
  buf[at + 2] = 121; // y
  buf[at + 3] = 58; // :
  for (let d = 13; d >= 4; d--) {
    buf[at + d] = 48 + (i % 10);
    i = Math.floor(i / 10);
  }
}

function storeRun(): { rss: number; findRate: number; setRate: number } {
  let t = 1;
  const store = new Store(
    { memoryLimit: 1024 * 1048576, maxItemSize: 1048576, evict: true },
    { now: () => t },
  );
  const key = new Uint8Array(14);
  const t0 = performance.now();
  for (let i = 0; i < ITEMS; i++) {
    writeKey(key, 0, i);
    const h = store.alloc(key, 0, 14, 0, 0, VALUE);
    store.buffer(h).fill(120, store.valueOffset(h), store.valueOffset(h) + VALUE);
    store.link(h);
  }
  const setRate = ITEMS / ((performance.now() - t0) / 1000);
  t = 2;
  const t1 = performance.now();
  let found = 0;
  for (let i = 0; i < ITEMS; i++) {
    writeKey(key, 0, i);
    const h = store.find(key, 0, 14);
    if (h >= 0) {
      store.bump(h);
      found++;
    }
  }
  const findRate = ITEMS / ((performance.now() - t1) / 1000);
  if (found !== ITEMS || store.stats.currItems !== ITEMS) throw new Error(`lost items: ${found}`);
  const rss = Deno.memoryUsage().rss;
  return { rss, findRate, setRate };
}

async function memcachedRss(): Promise<number> {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  const child = new Deno.Command(MEMCACHED, {
    args: ["-m", "1024", "-p", String(port), "-l", "127.0.0.1", "-U", "0", "-u", "root"],
    stdout: "null",
    stderr: "null",
  }).spawn();
  try {
    let conn: Deno.TcpConn | undefined;
    for (let i = 0; i < 200 && !conn; i++) {
      try {
        conn = await Deno.connect({ hostname: "127.0.0.1", port });
      } catch {
        await new Promise((r) => setTimeout(r, 25));
      }
    }
    if (!conn) throw new Error("memcached did not start");
    const head = new TextEncoder().encode("set ");
    const tail = new TextEncoder().encode(` 0 0 ${VALUE} noreply\r\n`);
    const line = head.length + 14 + tail.length + VALUE + 2;
    const BATCH = 1000;
    const buf = new Uint8Array(line * BATCH);
    for (let b = 0; b < BATCH; b++) {
      const at = b * line;
      buf.set(head, at);
      buf.set(tail, at + head.length + 14);
      buf.fill(120, at + head.length + 14 + tail.length, at + line - 2);
      buf[at + line - 2] = 13;
      buf[at + line - 1] = 10;
    }
    for (let i = 0; i < ITEMS; i += BATCH) {
      const n = Math.min(BATCH, ITEMS - i);
      for (let b = 0; b < n; b++) writeKey(buf, b * line + head.length, i + b);
      let off = 0;
      const end = n * line;
      while (off < end) off += await conn.write(buf.subarray(off, end));
    }
    await conn.write(new TextEncoder().encode("stats\r\n"));
    const reply = new Uint8Array(65536);
    let text = "";
    while (!text.endsWith("END\r\n")) {
      const n = await conn.read(reply);
      if (n === null) break;
      text += new TextDecoder().decode(reply.subarray(0, n));
    }
    const items = /curr_items (\d+)/.exec(text)?.[1];
    if (Number(items) !== ITEMS) throw new Error(`memcached holds ${items} items`);
    conn.close();
    const status = await Deno.readTextFile(`/proc/${child.pid}/status`);
    const kb = Number(/VmRSS:\s+(\d+) kB/.exec(status)?.[1]);
    return kb * 1024;
  } finally {
    try {
      child.kill("SIGTERM");
    } catch { /* already gone */ }
    await child.status;
  }
}

const mine = storeRun();
const theirs = await memcachedRss();
const mb = (n: number) => (n / 1048576).toFixed(1) + " MiB";
console.log(`items:            ${ITEMS} (14-byte keys, ${VALUE}-byte values)`);
console.log(`memrep store RSS: ${mb(mine.rss)}`);
console.log(`memcached RSS:    ${mb(theirs)}`);
console.log(`ratio:            ${(mine.rss / theirs).toFixed(3)}`);
console.log(`alloc+link:       ${Math.round(mine.setRate).toLocaleString("en")} ops/s`);
console.log(`find+bump:        ${Math.round(mine.findRate).toLocaleString("en")} ops/s`);

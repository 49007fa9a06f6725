/**
 * memcached's -R (reqs_per_event): a pipelined batch longer than the limit
 * is still answered whole and in order, and `conn_yields` counts the yields
 * exactly as memcached 1.6.18 does for the same batches (gets write at once
 * there, other commands leave their replies pending: both shapes checked).
 * @module
 */

import {
  connect,
  deepEqual,
  equal,
  ignoreUnless,
  type ProcessHandle,
  startMemcached,
  startMemrep,
} from "../helpers/mod.ts";
import { concatBytes } from "../helpers/bytes.ts";
import { OP, packet, setExtras, splitResponses } from "../helpers/binary.ts";

const R = 4;

async function yields(port: number): Promise<number> {
  const c = await connect(port);
  try {
    return Number((await c.stats()).get("conn_yields"));
  } finally {
    await c.close();
  }
}

/** One batch in one write on a fresh connection; returns the yields it caused. */
async function batchYields(
  port: number,
  batch: string,
  expect: string,
): Promise<number> {
  const before = await yields(port);
  const c = await connect(port);
  try {
    // Let the server take the connection in before the batch comes (memcached's first event).
    await new Promise((r) => setTimeout(r, 30));
    await c.send(batch);
    equal(
      await c.readUntilText((b) => (b.length >= expect.length ? expect.length : -1), 5000),
      expect,
    );
  } finally {
    await c.close();
  }
  return (await yields(port)) - before;
}

/** The batches: [name, request bytes, the whole expected reply]. */
function batches(seed: number): Array<[string, string, string]> {
  const out: Array<[string, string, string]> = [];
  for (let k = 1; k <= 3 * R + 2; k++) {
    const keys = Array.from({ length: k }, (_, i) => `k${seed}_${i}`);
    out.push([
      `${k} sets`,
      keys.map((key, i) => `set ${key} ${i} 0 ${String(i).length}\r\n${i}\r\n`).join(""),
      "STORED\r\n".repeat(k),
    ]);
    out.push([
      `${k} gets`,
      keys.map((key) => `get ${key}\r\n`).join(""),
      keys.map((key, i) => `VALUE ${key} ${i} ${String(i).length}\r\n${i}\r\nEND\r\n`).join(""),
    ]);
    out.push([
      `${k} noreply sets and mn`,
      keys.map((key) => `set ${key} 0 0 1 noreply\r\nx\r\n`).join("") + "mn\r\n",
      "MN\r\n",
    ]);
    out.push([
      `${k} gets and a partial one`,
      keys.map((key) => `get ${key}\r\n`).join("") + "get par",
      keys.map((key) => `VALUE ${key} 0 1\r\nx\r\nEND\r\n`).join(""),
    ]);
  }
  return out;
}

/**
 * A binary batch of `k` requests in one write; checks every reply came, in
 * order (opaques 0..k-1, `status`), and returns the yields it caused.
 */
async function binaryYields(port: number, packets: Uint8Array[], status: number): Promise<number> {
  const before = await yields(port);
  const c = await connect(port);
  try {
    await new Promise((r) => setTimeout(r, 30));
    await c.send(concatBytes(...packets));
    const got = await c.readUntil((b) => {
      const { packets: done } = splitResponses(b);
      return done.length >= packets.length ? b.length : -1;
    }, 5000);
    const replies = splitResponses(got).packets;
    deepEqual(replies.map((r) => r.opaque), packets.map((_, i) => i));
    deepEqual(replies.map((r) => r.status), packets.map(() => status));
  } finally {
    await c.close();
  }
  return (await yields(port)) - before;
}

async function measure(server: ProcessHandle, seed: number): Promise<Map<string, number>> {
  const got = new Map<string, number>();
  for (const [name, batch, expect] of batches(seed)) {
    got.set(name, await batchYields(server.port, batch, expect));
  }
  // Binary: a success leaves its reply pending, a miss (an error) is written at once.
  for (let k = 1; k <= 3 * R + 2; k++) {
    const sets = Array.from(
      { length: k },
      (_, i) =>
        packet({
          op: OP.SET,
          key: `b${seed}_${i}`,
          extras: setExtras(0, 0),
          value: "v",
          opaque: i,
        }),
    );
    got.set(`${k} binary sets`, await binaryYields(server.port, sets, 0));
    const misses = Array.from(
      { length: k },
      (_, i) => packet({ op: OP.GET, key: `none${seed}_${i}`, opaque: i }),
    );
    got.set(`${k} binary misses`, await binaryYields(server.port, misses, 1));
  }
  return got;
}

const NAME = "-R: long pipelines are answered in order and conn_yields counts as memcached's";

Deno.test({
  name: NAME,
  ignore: ignoreUnless(NAME, ["memcached"]),
  async fn() {
    const seed = Math.floor(Math.random() * 1e6);
    const ours = await startMemrep(["serve", "-t", "1", "-R", String(R)]);
    const ref = await startMemcached(["-t", "1", "-R", String(R)]);
    try {
      const c = await connect(ours.port);
      equal((await c.stats("settings")).get("reqs_per_event"), String(R));
      await c.close();
      const mine = await measure(ours, seed);
      const theirs = await measure(ref, seed);
      const differ = [...mine].filter(([name, n]) => theirs.get(name) !== n)
        .map(([name, n]) => `${name}: memrep ${n}, memcached ${theirs.get(name)}`);
      deepEqual(differ, []);
      // The batches longer than R yield at all.
      equal(mine.get(`${3 * R + 2} sets`), 3);
    } finally {
      await Promise.all([ours.stop(), ref.stop()]);
    }
  },
});

Deno.test("-R 0 is refused with memcached's message; stats settings shows the default 20", async () => {
  const bad = await startMemrep(["serve", "-R", "0"], { waitPort: false });
  await bad.waitForLog(/^Number of requests per event must be greater than 0$/, 15_000);
  equal((await bad.stop()).success, false);
  const ok = await startMemrep(["serve", "-t", "1"]);
  try {
    const c = await connect(ok.port);
    const s = await c.stats("settings");
    equal(s.get("reqs_per_event"), "20");
    equal((await c.stats()).get("conn_yields"), "0");
    await c.close();
  } finally {
    await ok.stop();
  }
});

/**
 * `serve -e <file>` (warm restart, memcached's restart.t): SIGUSR1 or
 * SIGTERM saves the cache, the next start with the same -e has every item,
 * flag, CAS and remaining TTL back; damaged, foreign and mismatched files
 * are reported and ignored.
 * @module
 */

import {
  connect,
  deepEqual,
  equal,
  freePort,
  haveBinary,
  match,
  mulberry32,
  ok,
  type ProcessHandle,
  startMemcached,
  startMemrep,
  type TestConn,
  waitUntil,
} from "../helpers/mod.ts";
import { checksum } from "../../lib/store/mod.ts";
import { fill, replStat, sameContents, settled, startNode } from "../replication/pair.ts";

interface Seen {
  value: string;
  flags: number;
  cas: number;
  ttl: number;
  /** Unix ms when its batch was sent and when the replies were in. */
  sent: number;
  read: number;
}

/** `mg <key> v c f t k` for every key, pipelined in batches: key -> item (absent = miss). */
async function readItems(c: TestConn, keys: string[]): Promise<Map<string, Seen>> {
  const out = new Map<string, Seen>();
  const dec = new TextDecoder();
  for (let b = 0; b < keys.length; b += 1000) {
    const batch = keys.slice(b, b + 1000);
    const sent = Date.now();
    await c.send(batch.map((k) => `mg ${k} v c f t k\r\n`).join("") + "mn\r\n");
    const raw = dec.decode(await c.readUntil("MN\r\n", 20_000));
    const read = Date.now();
    const lines = raw.split("\r\n");
    let i = 0;
    for (const key of batch) {
      const line = lines[i++];
      if (line === "EN" || line.startsWith("EN ")) continue;
      const m = /^VA (\d+) (.*)$/.exec(line);
      if (!m) throw new Error(`unexpected reply for ${key}: ${line}`);
      const item: Seen = { value: lines[i++], flags: -1, cas: -1, ttl: -2, sent, read };
      let k = "";
      for (const tok of m[2].split(" ")) {
        const v = tok.slice(1);
        if (tok[0] === "c") item.cas = Number(v);
        else if (tok[0] === "f") item.flags = Number(v);
        else if (tok[0] === "t") item.ttl = Number(v);
        else if (tok[0] === "k") k = v;
      }
      equal(k, key, "replies out of order");
      equal(item.value.length, Number(m[1]));
      out.set(key, item);
    }
    equal(lines[i], "MN");
  }
  return out;
}

async function stopped(server: ProcessHandle): Promise<number> {
  const status = await server.status;
  await server.stop();
  return status.code;
}

Deno.test("serve -e: 100k items come back after SIGUSR1 with value, flags, CAS and TTL; expired ones do not", async () => {
  const seed = Date.now() % 1_000_000;
  console.log(`seed ${seed}`);
  const rnd = mulberry32(seed);
  const dir = await Deno.makeTempDir({ prefix: "memrep_warm_" });
  const file = `${dir}/cache`;
  const n = 100_000;
  const keys: string[] = [];
  const short = new Set<string>();
  let server = await startMemrep(["serve", "-m", "64", "-e", file]);
  try {
    const c = await connect(server.port);
    const unixNow = Math.floor(Date.now() / 1000);
    let batch = "";
    for (let i = 0; i < n; i++) {
      const key = `wr:${seed}:${i}`;
      keys.push(key);
      const len = 1 + Math.floor(rnd() * 60);
      let value = "";
      for (let j = 0; j < len; j++) value += String.fromCharCode(97 + Math.floor(rnd() * 26));
      const flags = Math.floor(rnd() * 4294967296);
      const r = rnd();
      let exptime = 0;
      if (r < 0.4) exptime = 0;
      else if (r < 0.8) exptime = 1000 + Math.floor(rnd() * 9000);
      else if (r < 0.9) exptime = unixNow + 2000 + Math.floor(rnd() * 3000); // absolute
      else {
        exptime = 1; // gone by the time the new process reads
        short.add(key);
      }
      batch += `set ${key} ${flags} ${exptime} ${len} noreply\r\n${value}\r\n`;
      if (batch.length > 256 * 1024) {
        await c.send(batch);
        batch = "";
      }
    }
    await c.send(batch);
    equal(await c.request("mn", "MN\r\n", 20_000), "MN\r\n");
    const setDone = Date.now();
    const live = keys.filter((k) => !short.has(k));
    const before = await readItems(c, live);
    equal(before.size, live.length, "every long-lived item is there before the restart");
    await c.close();

    server.kill("SIGUSR1");
    equal(await stopped(server), 0);
    ok(Deno.statSync(file).size > 0);
    // The TTL-1 items must be expired when the new process looks.
    await waitUntil(() => Date.now() > setDone + 2500, "the TTL-1 items expired", 5000);

    server = await startMemrep(["serve", "-m", "64", "-e", file]);
    const d = await connect(server.port);
    const after = await readItems(d, keys);
    let lost = 0, changed = 0, ttlOff = 0, resurrected = 0;
    let maxCas = 0;
    for (const key of keys) {
      const a = after.get(key);
      if (short.has(key)) {
        if (a) resurrected++;
        continue;
      }
      const b = before.get(key)!;
      maxCas = Math.max(maxCas, b.cas);
      if (!a) {
        lost++;
        continue;
      }
      if (a.value !== b.value || a.flags !== b.flags || a.cas !== b.cas) changed++;
      // Seconds between the two reads, bounded by the batches' times; a TTL is whole seconds (±1).
      const least = Math.floor((a.sent - b.read) / 1000) - 1;
      const most = Math.ceil((a.read - b.sent) / 1000) + 1;
      const ttlKept = b.ttl === -1 ? a.ttl === -1 : a.ttl >= b.ttl - most && a.ttl <= b.ttl - least;
      if (!ttlKept) {
        if (ttlOff++ < 5) {
          console.log(`${key}: ttl ${b.ttl} then ${a.ttl}, ${least}..${most} s later`);
        }
      }
    }
    deepEqual({ lost, changed, ttlOff, resurrected }, {
      lost: 0,
      changed: 0,
      ttlOff: 0,
      resurrected: 0,
    });
    // New writes get newer CAS values than every restored one.
    equal(await d.request("set fresh 0 0 1\r\nx"), "STORED\r\n");
    const fresh = /^VALUE fresh 0 1 (\d+)\r\n/.exec(await d.request("gets fresh", "END\r\n"));
    ok(fresh && Number(fresh[1]) > maxCas, `fresh cas ${fresh?.[1]} > ${maxCas}`);
    // Loaded once: the file is gone, so a crash now cannot bring this state back later.
    ok(!(await exists(file)), "the image is removed once loaded");
    await d.close();
  } finally {
    await server.stop();
    await Deno.remove(dir, { recursive: true });
  }
});

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch {
    return false;
  }
}

Deno.test("serve -e: SIGTERM saves too; SIGUSR1 without -e stops gracefully", async () => {
  const dir = await Deno.makeTempDir({ prefix: "memrep_warm_" });
  const file = `${dir}/cache`;
  let server = await startMemrep(["serve", "-e", file]);
  try {
    const c = await connect(server.port);
    equal(await c.request("set k 42 0 5\r\nhello"), "STORED\r\n");
    const cas = await c.request("gets k", "END\r\n");
    await c.close();
    server.kill("SIGTERM");
    equal(await stopped(server), 0);
    server = await startMemrep(["serve", "-e", file]);
    const d = await connect(server.port);
    equal(await d.request("gets k", "END\r\n"), cas);
    equal((await d.stats("settings")).get("memory_file"), file);
    await d.close();
    await server.stop();
    server = await startMemrep(["serve"]);
    server.kill("SIGUSR1");
    equal(await stopped(server), 0);
  } finally {
    await server.stop();
    await Deno.remove(dir, { recursive: true });
  }
});

/** Starts serve -e on `bytes` (or no file) and checks it starts empty, says `says` and serves. */
async function startsEmpty(
  dir: string,
  bytes: Uint8Array | null,
  says: RegExp,
  args: string[] = [],
): Promise<void> {
  const file = `${dir}/bad`;
  if (bytes) await Deno.writeFile(file, bytes);
  const server = await startMemrep(["serve", "-e", file, ...args]);
  try {
    const c = await connect(server.port);
    equal(await c.request("get k0", "END\r\n"), "END\r\n");
    equal((await c.stats()).get("curr_items"), "0");
    equal(await c.request("set k0 0 0 1\r\nx"), "STORED\r\n");
    equal(await c.request("get k0", "END\r\n"), "VALUE k0 0 1\r\nx\r\nEND\r\n");
    await c.close();
  } finally {
    await server.stop();
  }
  const err = server.stderrLines().join("\n");
  match(err, says);
  match(err, /starting with a clean cache/);
  await Deno.remove(file).catch(() => {});
}

Deno.test("serve -e: truncated, corrupted, foreign and mismatched files are reported and ignored", async () => {
  const dir = await Deno.makeTempDir({ prefix: "memrep_warm_" });
  try {
    const file = `${dir}/good`;
    const server = await startMemrep(["serve", "-e", file]);
    const c = await connect(server.port);
    for (let i = 0; i < 1000; i++) await c.send(`set k${i} ${i} 0 3 noreply\r\nabc\r\n`);
    equal(await c.request("mn", "MN\r\n"), "MN\r\n");
    await c.close();
    server.kill("SIGUSR1");
    equal(await stopped(server), 0);
    const good = await Deno.readFile(file);
    ok(good.length > 1 << 20);

    await startsEmpty(dir, null, /\[restart\] no metadata save file/);
    await startsEmpty(dir, good.slice(0, good.length - 4096), /truncated \(pages\)/);
    await startsEmpty(dir, good.slice(0, 100), /truncated \(header\)/);
    const flipped = good.slice();
    flipped[flipped.length - 100] ^= 0x40;
    await startsEmpty(dir, flipped, /page checksum mismatch/);
    const header = good.slice();
    header[20] ^= 1;
    await startsEmpty(dir, header, /header checksum mismatch/);
    await startsEmpty(dir, new TextEncoder().encode("MRD1 not an image\n"), /not a memrep/);
    // A valid header whose clock origin is ahead of the wall clock (the clock moved back).
    const future = good.slice();
    const dv = new DataView(future.buffer);
    dv.setFloat64(72, Date.now() + 86_400_000, true);
    dv.setUint32(156, checksum(future.subarray(0, 156)), true);
    await startsEmpty(dir, future, /saved in the future/);
    await startsEmpty(dir, new Uint8Array(0), /not a memrep restart file/);
    await startsEmpty(
      dir,
      good,
      /\[restart\] restart incompatible due to setting for \[maxbytes\] \[old value: 67108864\]\n\[restart\] failed to validate metadata, starting with a clean cache/,
      ["-m", "65"],
    );
    await startsEmpty(dir, good, /setting for \[item_size_max\]/, ["-I", "2m"]);
    await startsEmpty(dir, good, /setting for \[slab_config\]/, ["-f", "1.5"]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test({
  name: "serve -e: a -m mismatch says what memcached -e says",
  ignore: !haveBinary("memcached"),
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "memrep_warm_" });
    try {
      const file = `${dir}/mc`;
      let mc = await startMemcached(["-m", "64", "-e", file]);
      mc.kill("SIGUSR1");
      await mc.status;
      await mc.stop();
      mc = await startMemcached(["-m", "128", "-e", file]);
      await mc.stop();
      const line = mc.stderrLines().find((l) => l.includes("incompatible"));
      equal(
        line,
        "[restart] restart incompatible due to setting for [maxbytes] [old value: 67108864]",
      );

      const ours = `${dir}/memrep`;
      let server = await startMemrep(["serve", "-m", "64", "-e", ours]);
      server.kill("SIGUSR1");
      await stopped(server);
      server = await startMemrep(["serve", "-m", "128", "-e", ours]);
      await server.stop();
      ok(server.stderrLines().includes(line!), server.stderrLines().join("\n"));
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test("serve -e -A: `shutdown graceful` saves (memcached's SIGUSR1), plain `shutdown` does not", async () => {
  const dir = await Deno.makeTempDir({ prefix: "memrep_warm_" });
  const file = `${dir}/cache`;
  let server = await startMemrep(["serve", "-A", "-e", file, "-t", "2"]);
  try {
    for (const [mode, saves] of [["graceful", true], ["", false]] as const) {
      const c = await connect(server.port);
      equal(await c.request(`set k 0 0 ${mode.length + 1}\r\nv${mode}`), "STORED\r\n");
      await c.send(`shutdown ${mode}`.trim() + "\r\n");
      ok(await c.waitClosed(5000), "the connection closes");
      await c.close();
      equal(await stopped(server), 0);
      equal(await exists(file), saves, `shutdown ${mode}`);
      server = await startMemrep(["serve", "-A", "-e", file]);
      const d = await connect(server.port);
      equal(
        await d.request("get k", "END\r\n"),
        saves ? `VALUE k 0 ${mode.length + 1}\r\nv${mode}\r\nEND\r\n` : "END\r\n",
      );
      await d.close();
    }
  } finally {
    await server.stop();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("serve -e in a replicated pair: the restarted node has its items back, re-pairs, and its new writes win on the peer", async () => {
  const dir = await Deno.makeTempDir({ prefix: "memrep_warm_" });
  const file = `${dir}/a`;
  const replPort = freePort();
  let a = await startNode(replPort, ["-e", file]);
  await a.proc.waitForLog(/^replication: listen/, 10_000);
  const b = await startNode(replPort);
  try {
    await fill(a, "w", 2000);
    await settled(a, b);
    a.proc.kill("SIGUSR1");
    equal(await stopped(a.proc), 0);
    // Written while A is down: A must get it from B after the restart.
    const cb = await connect(b.port);
    equal(await cb.request("set while-down 0 0 1\r\nd"), "STORED\r\n");
    a = await startNode(replPort, ["-e", file], a.port);
    match(a.proc.stderrLines().join("\n"), /\[restart\] loaded 2000 items/);
    await settled(a, b);
    const items = await sameContents(a, b);
    equal(items.size, 2001);
    // A's clock issues versions above every restored one: its overwrite wins on B.
    const ca = await connect(a.port);
    equal(await ca.request("set w7 0 0 3\r\nnew"), "STORED\r\n");
    await waitUntil(
      async () => (await cb.request("get w7", "END\r\n")) === "VALUE w7 0 3\r\nnew\r\nEND\r\n",
      "A's new write reaches B",
      10_000,
    );
    console.log(
      `full copies A received after the restart: ${await replStat(a, "repl_full_copies_received")}`,
    );
    await ca.close();
    await cb.close();
  } finally {
    await a.proc.stop();
    await b.proc.stop();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("serve -e: a save that cannot be written is reported, exit code 1", async () => {
  const server = await startMemrep(["serve", "-e", "/nonexistent-dir-memrep/cache"]);
  const c = await connect(server.port);
  equal(await c.request("set k 0 0 1\r\nx"), "STORED\r\n");
  await c.close();
  server.kill("SIGUSR1");
  equal(await stopped(server), 1);
  match(server.stderrLines().join("\n"), /\[restart\] cannot save the cache to \/nonexistent/);
});

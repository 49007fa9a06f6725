/**
 * `memrep replicate` run as a real process (`deno run -P=memrep main.ts
 * replicate ...`) against real memcached.
 */

import { deepEqual, equal, match, ok, waitUntil } from "../helpers/assert.ts";
import { type Relay, startRelay } from "../helpers/relay.ts";
import { freePort } from "../helpers/ports.ts";
import {
  ignoreUnless,
  type ProcessHandle,
  runMemrep,
  startMemcached,
  startMemrep,
} from "../helpers/process.ts";
import { Client } from "../../lib/client/mod.ts";
import { DumpWriter } from "../../lib/copy/dump_format.ts";

const enc = new TextEncoder();
const ignore = ignoreUnless("memrep replicate tests", ["memcached"]);

async function withMemcached(
  count: number,
  args: string[],
  fn: (servers: ProcessHandle[]) => Promise<void>,
): Promise<void> {
  const servers: ProcessHandle[] = [];
  try {
    for (let i = 0; i < count; i++) servers.push(await startMemcached(args));
    await fn(servers);
  } finally {
    for (const s of servers) await s.stop();
  }
}

async function client(port: number): Promise<Client> {
  return await Client.connect("127.0.0.1", port);
}

function addr(s: ProcessHandle): string {
  return `127.0.0.1:${s.port}`;
}

interface Summary {
  copied: number;
  skipped: number;
  failed: number;
  expired: number;
  missing: number;
  existing: number;
  interrupted: boolean;
  errors: string[];
}

async function replicate(
  args: string[],
): Promise<{ code: number; stdout: string; stderr: string }> {
  return await runMemrep(["replicate", ...args], { timeoutMs: 60_000 });
}

async function replicateJson(
  args: string[],
): Promise<{ code: number; summary: Summary; stderr: string }> {
  const r = await replicate([...args, "--json"]);
  let summary: Summary;
  try {
    summary = JSON.parse(r.stdout);
  } catch {
    throw new Error(`no JSON summary (exit ${r.code}):\n${r.stdout}\n${r.stderr}`);
  }
  return { code: r.code, summary, stderr: r.stderr };
}

function pattern(n: number, seed: number): Uint8Array {
  const out = new Uint8Array(n);
  let x = seed * 2654435761 >>> 0;
  for (let i = 0; i < n; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    out[i] = x >>> 24;
  }
  return out;
}

Deno.test({
  name: "memcached to memcached keeps values, binary data, flags, TTLs and binary keys",
  ignore,
  async fn() {
    await withMemcached(2, ["-I", "2m", "-m", "128"], async ([src, dst]) => {
      const c = await client(src.port);
      const values = new Map<string, { value: Uint8Array; flags: number; ttl: number }>();
      for (let i = 0; i < 500; i++) {
        const value = pattern(i % 7 === 0 ? 1000 + i : i, i); // binary, includes \r\n and \0
        const flags = i === 1 ? 0xffffffff : i * 3;
        const ttl = i % 2 === 0 ? 0 : 1000 + i;
        values.set(`k:${i}`, { value, flags, ttl });
        await c.set(`k:${i}`, value, flags, ttl);
      }
      const big = pattern(1 << 20, 99);
      values.set("big", { value: big, flags: 5, ttl: 0 });
      await c.set("big", big, 5, 0);
      // Above 30 days memcached takes an absolute time: must survive as such.
      const far = 40 * 86400;
      await c.ms("far", enc.encode("far"), `T${Math.floor(Date.now() / 1000) + far} F1`);
      await c.ms("AAEC/w==", enc.encode("binary key"), "b F9 T0");
      c.close();

      const { code, summary, stderr } = await replicateJson([
        "--from",
        addr(src),
        "--to",
        addr(dst),
      ]);
      equal(code, 0, stderr);
      equal(summary.copied, 503);
      equal(summary.failed, 0);

      const d = await client(dst.port);
      try {
        for (const [key, want] of values) {
          const r = await d.mg(key, "v f t");
          deepEqual(r.value, want.value, key);
          equal(r.flags, want.flags, key);
          if (want.ttl === 0) equal(r.ttl, -1, key);
          else ok(r.ttl <= want.ttl && r.ttl >= want.ttl - 10, `${key}: ttl ${r.ttl}`);
        }
        const f = await d.mg("far", "v t");
        ok(f.ttl <= far + 2 && f.ttl >= far - 10, `far ttl ${f.ttl}`); // memcached's clock ticks per second
        const b = await d.mg("AAEC/w==", "b v f t");
        equal(new TextDecoder().decode(b.value), "binary key");
        equal(b.flags, 9);
        equal(b.ttl, -1);
      } finally {
        d.close();
      }
    });
  },
});

Deno.test({
  name:
    "items expired at the source are not copied (memcached no longer lists them); a plain run prints one summary line",
  ignore,
  async fn() {
    await withMemcached(2, [], async ([src, dst]) => {
      const c = await client(src.port);
      await c.set("short", enc.encode("x"), 0, 1);
      await c.set("long", enc.encode("y"), 0, 1000);
      c.close();
      await new Promise((r) => setTimeout(r, 2100));
      const r = await replicate(["--from", addr(src), "--to", addr(dst)]);
      equal(r.code, 0, r.stderr);
      const lines = r.stdout.trim().split("\n");
      equal(lines.length, 1, r.stdout);
      ok(
        /^memrep replicate: copied 1, skipped 0, failed 0 in [\d.]+ s \(/.test(lines[0]),
        lines[0],
      );
      equal(r.stderr.trim(), "");
      const d = await client(dst.port);
      equal(await d.getOne("short"), undefined);
      ok(await d.getOne("long"));
      d.close();
    });
  },
});

Deno.test({
  name: "--mode add fills missing keys and never overwrites the target's",
  ignore,
  async fn() {
    await withMemcached(2, [], async ([src, dst]) => {
      const c = await client(src.port);
      for (const k of ["a", "b", "c"]) await c.set(k, enc.encode(`src-${k}`), 1);
      c.close();
      const d = await client(dst.port);
      await d.set("b", enc.encode("dst-b"), 2);
      const { code, summary } = await replicateJson([
        "--from",
        addr(src),
        "--to",
        addr(dst),
        "--mode",
        "add",
      ]);
      equal(code, 0);
      equal(summary.copied, 2);
      equal(summary.existing, 1);
      equal(summary.skipped, 1);
      const got = await d.get(["a", "b", "c"]);
      deepEqual(
        [...got].map(([k, v]) => [k, new TextDecoder().decode(v.value), v.flags]),
        [["a", "src-a", 1], ["b", "dst-b", 2], ["c", "src-c", 1]],
      );
      d.close();
    });
  },
});

Deno.test({
  name: "several --to targets all receive the items; --match and --limit select them",
  ignore,
  async fn() {
    await withMemcached(4, [], async ([src, t1, t2, t3]) => {
      const c = await client(src.port);
      for (let i = 0; i < 50; i++) await c.set(`user:${i}:name`, enc.encode(`n${i}`));
      for (let i = 0; i < 50; i++) await c.set(`session:${i}`, enc.encode(`s${i}`));
      c.close();
      const a = await replicateJson([
        "--from",
        addr(src),
        "--to",
        addr(t1),
        "--to",
        addr(t2),
        "--match",
        "user:",
      ]);
      equal(a.code, 0);
      equal(a.summary.copied, 50);
      for (const t of [t1, t2]) {
        const d = await client(t.port);
        const stats = await d.stats();
        equal(stats.get("curr_items"), "50");
        equal(await d.getOne("session:1"), undefined);
        d.close();
      }
      const b = await replicateJson([
        "--from",
        addr(src),
        "--to",
        addr(t3),
        "--match",
        "session:?",
        "--limit",
        "5",
      ]);
      equal(b.code, 0);
      equal(b.summary.copied, 5);
      const d = await client(t3.port);
      equal((await d.stats()).get("curr_items"), "5");
      d.close();
      const g = await replicateJson([
        "--from",
        addr(src),
        "--to",
        addr(t3),
        "--match",
        "session:?",
      ]);
      equal(g.summary.copied, 10); // session:0 .. session:9
    });
  },
});

Deno.test({
  name: "dump then restore round-trips items into an empty server",
  ignore,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "memrep-copy-" });
    try {
      await withMemcached(2, ["-I", "2m", "-m", "128"], async ([src, dst]) => {
        const c = await client(src.port);
        const values = new Map<string, Uint8Array>();
        for (let i = 0; i < 300; i++) {
          const v = pattern(i === 5 ? 900_000 : i * 3, i);
          values.set(`item-${i}`, v);
          await c.set(`item-${i}`, v, i, i % 2 ? 500 : 0);
        }
        c.close();
        const file = `${dir}/cache.mrd`;
        const dump = await replicateJson(["--from", addr(src), "--dump", file]);
        equal(dump.code, 0, dump.stderr);
        equal(dump.summary.copied, 300);
        const restore = await replicateJson(["--restore", file, "--to", addr(dst)]);
        equal(restore.code, 0, restore.stderr);
        equal(restore.summary.copied, 300);
        const d = await client(dst.port);
        for (const [k, v] of values) {
          const r = await d.mg(k, "v f t");
          deepEqual(r.value, v, k);
          const i = Number(k.slice(5));
          equal(r.flags, i);
          if (i % 2) ok(r.ttl > 480 && r.ttl <= 500, `${k} ttl ${r.ttl}`);
          else equal(r.ttl, -1);
        }
        d.close();
      });
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

async function writeDumpFile(
  path: string,
  items: { key: string; value: string; exp: number }[],
): Promise<void> {
  const file = await Deno.open(path, { write: true, create: true, truncate: true });
  try {
    const w = new DumpWriter(file);
    await w.writeHeader({ created: Math.floor(Date.now() / 1000), source: "test" });
    for (const it of items) await w.add(enc.encode(it.key), enc.encode(it.value), 0, it.exp);
    await w.end();
  } finally {
    file.close();
  }
}

Deno.test({
  name: "restore skips items whose TTL passed since the dump",
  ignore,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "memrep-copy-" });
    try {
      const now = Math.floor(Date.now() / 1000);
      const file = `${dir}/old.mrd`;
      await writeDumpFile(file, [
        { key: "gone", value: "x", exp: now - 10 },
        { key: "alive", value: "y", exp: now + 300 },
        { key: "forever", value: "z", exp: 0 },
      ]);
      await withMemcached(1, [], async ([dst]) => {
        const { code, summary } = await replicateJson(["--restore", file, "--to", addr(dst)]);
        equal(code, 0);
        equal(summary.copied, 2);
        equal(summary.expired, 1);
        const d = await client(dst.port);
        equal(await d.getOne("gone"), undefined);
        const alive = await d.mg("alive", "v t");
        ok(alive.ttl > 290 && alive.ttl <= 300, `ttl ${alive.ttl}`);
        equal((await d.mg("forever", "v t")).ttl, -1);
        d.close();
      });
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name:
    "a corrupted or truncated dump is reported with the item index and nothing after it is written",
  ignore,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "memrep-copy-" });
    try {
      const file = `${dir}/good.mrd`;
      const items = [];
      for (let i = 0; i < 2500; i++) items.push({ key: `k${i}`, value: `value-${i}`, exp: 0 });
      await writeDumpFile(file, items);
      const data = await Deno.readFile(file);
      // Record i starts after the header; records here are equal-sized per digit count,
      // so locate item 1700 by its key bytes.
      const at = indexOf(data, enc.encode("k1700value-1700"));
      ok(at > 0);
      const corrupt = data.slice();
      corrupt[at + 6] ^= 0x01;
      await Deno.writeFile(`${dir}/corrupt.mrd`, corrupt);
      await Deno.writeFile(`${dir}/cut.mrd`, data.subarray(0, at + 3));

      await withMemcached(2, [], async ([d1, d2]) => {
        const bad = await replicateJson(["--restore", `${dir}/corrupt.mrd`, "--to", addr(d1)]);
        equal(bad.code, 1);
        ok(/checksum mismatch\) at item 1700/.test(bad.stderr), bad.stderr);
        equal(bad.summary.copied, 1700);
        const c1 = await client(d1.port);
        equal((await c1.stats()).get("curr_items"), "1700");
        ok(await c1.getOne("k1699"));
        equal(await c1.getOne("k1700"), undefined);
        equal(await c1.getOne("k2000"), undefined);
        c1.close();

        const cut = await replicate(["--restore", `${dir}/cut.mrd`, "--to", addr(d2)]);
        equal(cut.code, 1);
        ok(/truncated dump \(cut inside a record\) at item 1700/.test(cut.stderr), cut.stderr);
        const c2 = await client(d2.port);
        equal((await c2.stats()).get("curr_items"), "1700");
        c2.close();
      });
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

function indexOf(hay: Uint8Array, needle: Uint8Array): number {
  outer: for (let i = 0; i + needle.length <= hay.length; i++) {
    for (let j = 0; j < needle.length; j++) if (hay[i + j] !== needle[j]) continue outer;
    return i;
  }
  return -1;
}

Deno.test({
  name: "unreachable source or target: message names the server, exit 1",
  ignore,
  async fn() {
    await withMemcached(1, [], async ([mc]) => {
      const dead = freePort();
      const a = await replicate(["--from", `127.0.0.1:${dead}`, "--to", addr(mc)]);
      equal(a.code, 1);
      ok(a.stderr.includes(`cannot connect to source 127.0.0.1:${dead}`), a.stderr);
      const b = await replicate(["--from", addr(mc), "--to", `127.0.0.1:${dead}`]);
      equal(b.code, 1);
      ok(b.stderr.includes(`cannot connect to target 127.0.0.1:${dead}`), b.stderr);
    });
  },
});

Deno.test({
  name: "a source without metadump support is refused with a clear message",
  ignore,
  async fn() {
    await withMemcached(1, ["-o", "no_lru_crawler"], async ([src]) => {
      await withMemcached(1, [], async ([dst]) => {
        const r = await replicate(["--from", addr(src), "--to", addr(dst)]);
        equal(r.code, 1);
        ok(r.stderr.includes(`source ${addr(src)} cannot list its keys`), r.stderr);
        ok(r.stderr.includes("lru crawler disabled"), r.stderr);
      });
    });
  },
});

Deno.test({
  name: "a target refusing items (too large) is named with the count, exit 1",
  ignore,
  async fn() {
    await withMemcached(1, ["-I", "4m", "-m", "128"], async ([src]) => {
      await withMemcached(1, [], async ([dst]) => {
        const c = await client(src.port);
        await c.set("huge1", pattern(2 << 20, 1));
        await c.set("huge2", pattern(3 << 20, 2));
        await c.set("small", enc.encode("ok"));
        c.close();
        const { code, summary, stderr } = await replicateJson([
          "--from",
          addr(src),
          "--to",
          addr(dst),
        ]);
        equal(code, 1);
        equal(summary.copied, 1);
        equal(summary.failed, 2);
        ok(
          stderr.includes(
            `target ${addr(dst)} refused 2 items: SERVER_ERROR object too large for cache`,
          ),
          stderr,
        );
      });
    });
  },
});

Deno.test("bad flags print a message and exit 2", async () => {
  const cases: [string[], RegExp][] = [
    [["--bogus"], /Unknown option '--bogus'/],
    [["--to", "127.0.0.1:1"], /give a source/],
    [["--from", "127.0.0.1:1"], /give a target/],
    [["--from", "a:1", "--restore", "f", "--to", "b:2"], /cannot be combined/],
    [["--from", "a:1", "--to", "b:2", "--mode", "replace"], /--mode must be 'set' or 'add'/],
    [["--from", "a:99999", "--to", "b:2"], /--from: expected host:port/],
    [["--from", "a:1", "--to", "b:2", "--limit", "lots"], /--limit: not a number/],
    [["--from", "a:1", "--to", "b:2", "--limit", "-1"], /--limit: not a number/],
    [["--from", "a:1", "--to", "b:2", "--batch", "0"], /--batch: 0 is out of range/],
    [["--from"], /--from <value>' argument missing/],
    [["--from", "a:1", "--to"], /--to <value>' argument missing/],
    [["--from", "a:1", "--to", "b:"], /--to: expected host:port, got 'b:'/],
    [["--from", "a:1", "--to", ":11211"], /--to: expected host:port/],
    [["--from", "a:1", "--to", "b:2", "stray"], /Unexpected argument 'stray'/],
    [["--from", "a:1", "--to", "b:2", "--json=yes"], /'--json' does not take an argument/],
    [["--from", "a:1", "--to", "b:2", "--match", ""], /--match needs a pattern/],
    // A glob no key can follow was an uncaught SyntaxError (exit 1, a stack trace).
    [
      ["--from", "a:1", "--to", "b:2", "--match", "k[z-a]"],
      /--match: not a glob: .*Range out of order/,
    ],
  ];
  for (const [args, re] of cases) {
    const r = await replicate(args);
    equal(r.code, 2, args.join(" "));
    ok(re.test(r.stderr), `${args.join(" ")}: ${r.stderr}`);
  }
  const help = await replicate(["--help"]);
  equal(help.code, 0);
  ok(help.stdout.includes("--restore <file>"));
});

/**
 * 40k items on `src`, copied to `dst` one item per batch through a relay that
 * delays every chunk by 1 ms: the copy takes at least 40 s on any machine, so
 * it is always interrupted midway. Resolves once items have reached `dst`.
 */
async function startSlowCopy(
  src: ProcessHandle,
  dst: ProcessHandle,
): Promise<{ copy: ProcessHandle; relay: Relay }> {
  const c = await client(src.port);
  const v = enc.encode("v".repeat(50));
  for (let i = 0; i < 40_000; i += 2000) {
    const b = [];
    for (let j = i; j < i + 2000; j++) b.push(c.set(`k${j}`, v));
    await Promise.all(b);
  }
  c.close();
  const relay = startRelay(dst.port);
  relay.setLatency(1);
  const copy = await startMemrep(
    ["replicate", "--from", addr(src), "--to", `127.0.0.1:${relay.port}`, "--batch", "1"],
    { waitPort: false },
  );
  const d = await client(dst.port);
  await waitUntil(async () => Number((await d.stats()).get("curr_items")) >= 100, "copy started");
  d.close();
  return { copy, relay };
}

/**
 * Interrupts a slow copy with `stop` and checks the run ends with `code`, a
 * stderr naming the cause (`blame`, if given) and the summary line so far,
 * which `summary` starts; after a clean stop (130) the target holds exactly
 * the items the summary counts.
 */
async function interruptCopy(
  stop: (src: ProcessHandle, dst: ProcessHandle, copy: ProcessHandle) => void,
  code: number,
  summary: string,
  blame?: (src: ProcessHandle, relay: Relay) => string,
): Promise<void> {
  await withMemcached(2, [], async ([src, dst]) => {
    const { copy: p, relay } = await startSlowCopy(src, dst);
    try {
      stop(src, dst, p);
      const guard = setTimeout(() => p.kill("SIGKILL"), 15_000);
      const status = await p.status;
      clearTimeout(guard);
      await p.stop(); // collects the rest of the output
      equal(status.code, code, p.outputLines().join("\n"));
      const err = p.stderrLines().join("\n");
      if (blame) ok(err.includes(blame(src, relay)), err);
      const line = p.stdoutLines().find((l) => l.startsWith(summary));
      ok(line, p.outputLines().join("\n"));
      const copied = Number(/copied (\d+)/.exec(line)![1]);
      ok(copied > 0 && copied < 40_000, line);
      if (code === 130) {
        // A clean stop: every item counted is on the target, no more.
        const d = await client(dst.port);
        equal(Number((await d.stats()).get("curr_items")), copied);
        d.close();
      }
    } finally {
      await p.stop();
      await relay.close();
    }
  });
}

Deno.test({
  name: "a target dying mid-copy stops the run: message names it, summary so far, exit 1",
  ignore,
  fn: () =>
    interruptCopy(
      (_src, dst) => dst.kill("SIGKILL"),
      1,
      "memrep replicate: copied ",
      (_src, relay) => `lost target 127.0.0.1:${relay.port}`,
    ),
});

Deno.test({
  name: "a source dying mid-copy stops the run: message names it, summary so far, exit 1",
  ignore,
  fn: () =>
    interruptCopy(
      (src) => src.kill("SIGKILL"),
      1,
      "memrep replicate: copied ",
      (src) => `source ${addr(src)}`,
    ),
});

Deno.test({
  name:
    "a dump whose source dies mid-run keeps what was copied (in <path>.partial) and reads back as truncated",
  ignore,
  async fn() {
    await withMemcached(2, [], async ([src, dst]) => {
      const c = await client(src.port);
      const v = enc.encode("v".repeat(50));
      await Promise.all(Array.from({ length: 20_000 }, (_, i) => c.set(`k${i}`, v)));
      c.close();
      // The source answers through a slow relay, so the run is cut midway.
      const relay = startRelay(src.port);
      relay.setLatency(1);
      const file = await Deno.makeTempFile({ suffix: ".mrd" });
      const p = await startMemrep(
        ["replicate", "--from", `127.0.0.1:${relay.port}`, "--dump", file, "--batch", "1"],
        { waitPort: false },
      );
      try {
        // Items fetched, still in the writer's buffer (it flushes per MiB): none on disk yet.
        const s = await client(src.port);
        await waitUntil(async () => Number((await s.stats()).get("get_hits")) >= 100, "fetches");
        s.close();
        src.kill("SIGKILL");
        equal((await p.status).code, 1);
        await p.stop();
        const copied = Number(/copied (\d+)/.exec(p.stdoutLines().join("\n"))?.[1]);
        ok(copied > 0 && copied < 20_000, p.outputLines().join("\n"));
        // The earlier file stays as it was; what the run got is beside it.
        equal((await Deno.stat(file)).size, 0, "the file the dump would replace");
        const r = await replicate(["--restore", `${file}.partial`, "--to", addr(dst)]);
        equal(r.code, 1, r.stderr);
        match(r.stderr, /truncated dump \(no end record\)/);
        const d = await client(dst.port);
        equal(
          Number((await d.stats()).get("curr_items")),
          copied,
          "every item counted was written",
        );
        d.close();
      } finally {
        await p.stop();
        await relay.close();
        await Deno.remove(file);
        await Deno.remove(`${file}.partial`).catch(() => {});
      }
    });
  },
});

Deno.test({
  name: "Ctrl-C stops the copy cleanly and prints the summary so far",
  ignore,
  fn: () =>
    interruptCopy(
      (_src, _dst, p) => p.kill("SIGINT"),
      130,
      "memrep replicate: interrupted: copied ",
    ),
});

/**
 * `memrep replicate` while items change under it: a source written and
 * deleted from during the copy, items whose TTL runs out mid-copy, a target
 * out of memory (`serve -M`). Seeded: the seed is printed.
 */

import { equal, ok, waitUntil } from "../helpers/assert.ts";
import { mulberry32 } from "../helpers/random.ts";
import {
  ignoreUnless,
  type ProcessHandle,
  runMemrep,
  startMemcached,
  startMemrep,
} from "../helpers/process.ts";
import { Client } from "../../lib/client/mod.ts";
import { contents } from "./contents.ts";
import { addr, currItems, withServers } from "./run.ts";

const ignore = ignoreUnless("memrep replicate churn tests", ["memcached"]);
const SEED = Number(Deno.env.get("MEMREP_SEED") ?? 31337);
console.log(`churn_test seed ${SEED} (MEMREP_SEED=${SEED} replays it)`);

const enc = new TextEncoder();
const dec = new TextDecoder();

interface Summary {
  copied: number;
  skipped: number;
  failed: number;
  expired: number;
  missing: number;
  errors: string[];
}

/** `memrep replicate <args> --json` started in the background. */
async function startCopy(args: string[]): Promise<ProcessHandle> {
  return await startMemrep(["replicate", ...args, "--json"], { waitPort: false });
}

async function finish(p: ProcessHandle): Promise<{ code: number; summary: Summary; out: string }> {
  const guard = setTimeout(() => p.kill("SIGKILL"), 45_000);
  const status = await p.status;
  clearTimeout(guard);
  await p.stop();
  const out = p.outputLines().join("\n");
  const json = p.stdoutLines().find((l) => l.startsWith("{"));
  ok(json, out);
  return { code: status.code, summary: JSON.parse(json), out };
}

Deno.test({
  name: "a source written and deleted from during the copy: every copied value is one the key had",
  ignore,
  async fn() {
    await withServers("target", async ({ src, dst, relay }) => {
      relay.setLatency(1);
      const rand = mulberry32(SEED);
      const n = 5000;
      // Every value a key ever had: "<key>=<version>", flags = version.
      const history = new Map<string, Set<string>>();
      const write = (c: Client, key: string, version: number) => {
        const value = `${key}=${version}`.padEnd(20 + (version % 7) * 30, ".");
        let h = history.get(key);
        if (h === undefined) history.set(key, h = new Set());
        h.add(value);
        return c.set(key, enc.encode(value), version);
      };
      const c = await Client.connect("127.0.0.1", src.port);
      await Promise.all(Array.from({ length: n }, (_, i) => write(c, `k${i}`, 0)));
      const copy = await startCopy([
        "--from",
        addr(src.port),
        "--to",
        addr(relay.port),
        "--batch",
        "10",
      ]);
      let version = 1, deleted = 0;
      await waitUntil(async () => await currItems(dst.port) > 100, "copy started", 30_000);
      while (!copy.exited()) {
        const ops = [];
        for (let j = 0; j < 50; j++) {
          const key = `k${Math.floor(rand() * n * 1.1)}`; // some new keys, too
          if (rand() < 0.2) {
            ops.push(c.delete(key));
            deleted++;
          } else ops.push(write(c, key, version++));
        }
        await Promise.all(ops);
        await new Promise((r) => setTimeout(r, 5));
      }
      c.close();
      const r = await finish(copy);
      equal(r.code, 0, r.out);
      equal(r.summary.failed, 0, r.out);
      ok(
        version > 500 && deleted > 100,
        `only ${version} writes, ${deleted} deletes during the copy`,
      );
      const got = await contents(dst.port);
      ok(got.size > n * 0.8, `${got.size} items on the target`);
      for (const [hexKey, item] of got) {
        const value = dec.decode(item.value);
        const key = value.slice(0, value.indexOf("="));
        ok(history.get(key)?.has(value), `${hexKey}: ${value} was never written`);
        equal(item.flags, Number(value.slice(key.length + 1).replace(/\.+$/, "")), value);
        equal(item.ttl, -1, value);
      }
    });
  },
});

Deno.test({
  name:
    "items expiring mid-copy are skipped and counted, never written without their TTL, never resurrected",
  ignore,
  async fn() {
    await withServers("target", async ({ src, dst, relay }) => {
      relay.setLatency(1);
      const n = 6000;
      const c = await Client.connect("127.0.0.1", src.port);
      // TTLs of 2 to 4 s, the copy slowed to take longer than that.
      await Promise.all(
        Array.from({ length: n }, (_, i) => c.set(`t${i}`, enc.encode(`v${i}`), i, 2 + (i % 3))),
      );
      c.close();
      const copy = await startCopy([
        "--from",
        addr(src.port),
        "--to",
        addr(relay.port),
        "--batch",
        "5",
      ]);
      const r = await finish(copy);
      equal(r.code, 0, r.out);
      const s = r.summary;
      equal(s.failed, 0, r.out);
      ok(s.copied > 0 && s.skipped > 0, `copied ${s.copied}, skipped ${s.skipped}: not mid-copy`);
      equal(s.copied + s.skipped, n, r.out);
      equal(s.skipped, s.expired + s.missing, r.out);
      const d = await Client.connect("127.0.0.1", dst.port);
      try {
        const held = await contents(dst.port);
        for (const [k, item] of held) ok(item.ttl >= 0 && item.ttl <= 4, `${k}: ttl ${item.ttl}`);
        // Once the source's last item is gone, so is every copy (memcached's clock ticks per second).
        await new Promise((r) => setTimeout(r, 5500));
        const left = [];
        for (let i = 0; i < n; i += 500) {
          const keys = Array.from({ length: Math.min(500, n - i) }, (_, j) => `t${i + j}`);
          for (const k of (await d.get(keys)).keys()) left.push(k);
        }
        equal(left.length, 0, `resurrected: ${left.slice(0, 10).join(" ")}`);
      } finally {
        d.close();
      }
    });
  },
});

Deno.test({
  name:
    "a target out of memory (serve -M): refused items counted and named, exit 1, the rest written",
  ignore,
  async fn() {
    const src = await startMemcached();
    const dst = await startMemrep(["serve", "-m", "2", "-M"]);
    try {
      const c = await Client.connect("127.0.0.1", src.port);
      const v = new Uint8Array(2000);
      await Promise.all(Array.from({ length: 3000 }, (_, i) => c.set(`m${i}`, v, i)));
      c.close();
      const r = await runMemrep(
        ["replicate", "--from", addr(src.port), "--to", addr(dst.port), "--json"],
        { timeoutMs: 60_000 },
      );
      equal(r.code, 1, r.stderr);
      const s: Summary = JSON.parse(r.stdout);
      ok(s.failed > 0 && s.copied > 0, r.stdout);
      equal(s.copied + s.failed, 3000, r.stdout);
      const message = `target ${
        addr(dst.port)
      } refused ${s.failed} items: SERVER_ERROR out of memory`;
      ok(r.stderr.includes(message), r.stderr);
      ok(s.errors.some((e) => e.startsWith(message)), r.stdout);
      equal(await currItems(dst.port), s.copied);
    } finally {
      await src.stop();
      await dst.stop();
    }
  },
});

Deno.test({
  name:
    "a target without meta commands (memcached 1.5, as its version says) gets text set/add: control-byte keys as they are",
  ignore,
  async fn() {
    await withServers("target", async ({ src, dst, relay }) => {
      // The relay makes dst look like 1.5.22 and tells whether any meta command went through.
      let meta = 0;
      relay.tamper((chunk, toTarget) => {
        const text = String.fromCharCode(...chunk.subarray(0, 64 * 1024));
        if (toTarget) {
          if (/(^|\n)m[sg] /.test(text)) meta++;
          return chunk;
        }
        return text.startsWith("VERSION ")
          ? enc.encode(text.replace(/^VERSION [\d.]+/, "VERSION 1.5.22"))
          : chunk;
      });
      const c = await Client.connect("127.0.0.1", src.port);
      const tab = new Uint8Array(250).fill(0x61);
      tab[3] = 0x09;
      await c.set(tab, enc.encode("tab"), 1, 0);
      await c.set("plain", enc.encode("p"), 0xffffffff, 300);
      await c.set("keep", enc.encode("from source"), 2, 0);
      await c.ms("IEJJTg==", enc.encode("binary"), "b F3 T0"); // " BIN": text cannot carry it
      c.close();
      const d = await Client.connect("127.0.0.1", dst.port);
      await d.set("keep", enc.encode("target's own"), 9, 0);
      const r = await runMemrep([
        "replicate",
        "--from",
        addr(src.port),
        "--to",
        addr(relay.port),
        "--mode",
        "add",
        "--json",
      ], { timeoutMs: 60_000 });
      equal(meta, 0, "no meta command reached the 1.5 target");
      equal(r.code, 1, r.stderr);
      const s = JSON.parse(r.stdout);
      equal(s.copied, 2, r.stdout);
      equal(s.existing, 1, r.stdout);
      equal(s.failed, 1, r.stdout);
      ok(
        r.stderr.includes("refused 1 item: binary key needs a server with meta commands"),
        r.stderr,
      );
      equal(dec.decode((await d.mg(tab, "v f")).value), "tab");
      const p = await d.mg("plain", "v f t");
      equal(p.flags, 0xffffffff);
      ok(p.ttl > 295 && p.ttl <= 300, `ttl ${p.ttl}`);
      equal(dec.decode((await d.getOne("keep"))!.value), "target's own");
      d.close();
    });
  },
});

Deno.test({
  name:
    "fetches the source refuses: counted failed, the message names the source and the count, exit 1",
  ignore,
  async fn() {
    await withServers("source", async ({ src, dst, relay }) => {
      // The relay turns the mg of every "bad" key into one with a 252-byte key.
      relay.tamper((chunk, toTarget) => {
        if (!toTarget) return chunk;
        const text = String.fromCharCode(...chunk);
        if (!text.includes("mg bad")) return chunk;
        return Uint8Array.from(
          text.replaceAll("mg bad", "mg " + "x".repeat(251)),
          (c) => c.charCodeAt(0),
        );
      });
      const c = await Client.connect("127.0.0.1", src.port);
      for (let i = 0; i < 7; i++) await c.set(`bad${i}`, enc.encode("b"));
      for (let i = 0; i < 50; i++) await c.set(`good${i}`, enc.encode("g"));
      c.close();
      const r = await runMemrep(
        ["replicate", "--from", addr(relay.port), "--to", addr(dst.port), "--batch", "5", "--json"],
        { timeoutMs: 60_000 },
      );
      equal(r.code, 1, r.stderr);
      const s: Summary = JSON.parse(r.stdout);
      equal(s.copied, 50, r.stdout);
      equal(s.failed, 7, r.stdout);
      const message = `source ${
        addr(relay.port)
      } refused 7 items: CLIENT_ERROR bad command line format`;
      ok(r.stderr.includes(message), r.stderr);
      equal(await currItems(dst.port), 50);
    });
  },
});

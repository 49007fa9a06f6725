/**
 * `memrep replicate` over items of every legal shape, compared in full:
 * every key the source lists (metadump) with its value, flags and remaining
 * TTL (mg), against the target's, byte for byte. Keys: 250 bytes, URL-escape
 * bytes ('%', '+'), UTF-8, control bytes memcached's text protocol allows
 * (tab, CR, DEL, 0x01), binary keys (meta `b`); values of 0 bytes and of the
 * largest size the server takes, with CR LF inside; flags 0 and 2^32-1; TTLs
 * none, short, over 30 days. Seeded: the seed is printed.
 */

import { equal, ok } from "../helpers/assert.ts";
import { mulberry32 } from "../helpers/random.ts";
import {
  ignoreUnless,
  memrepCommand,
  type ProcessHandle,
  runMemrep,
  startMemcached,
  startMemrep,
} from "../helpers/process.ts";
import { Client } from "../../lib/client/mod.ts";
import { DumpWriter } from "../../lib/copy/dump_format.ts";
import { b64, hex, rawKey, sameAs } from "./contents.ts";

const ignore = ignoreUnless("memrep replicate item shape tests", ["memcached"]);
const SEED = Number(Deno.env.get("MEMREP_SEED") ?? 20261203);
console.log(`items_test seed ${SEED} (MEMREP_SEED=${SEED} replays it)`);

/** The largest value `port` stores under a 250-byte key with flags (binary search with set). */
async function maxValue(c: Client): Promise<number> {
  let lo = 0, hi = 8 << 20;
  const k = "m".repeat(250);
  while (lo < hi) {
    const mid = Math.ceil((lo + hi) / 2);
    const stored = await c.set(k, new Uint8Array(mid), 0xffffffff).catch(() => false);
    if (stored) lo = mid;
    else hi = mid - 1;
  }
  await c.delete(k);
  return lo;
}

/** Fills `port` with items of every shape; returns how many. */
async function fill(port: number, rand: () => number): Promise<number> {
  const c = await Client.connect("127.0.0.1", port);
  const enc = new TextEncoder();
  let n = 0;
  const bytes = (len: number) => {
    const b = new Uint8Array(len);
    for (let i = 0; i < len; i++) b[i] = rand() * 256;
    return b;
  };
  const put = async (key: Uint8Array, value: Uint8Array, flags: number, ttl: number) => {
    const f = `F${flags} T${ttl}`;
    const r = await (rawKey(key) ? c.ms(key, value, f) : c.ms(b64(key), value, `b ${f}`))
      .catch((e) => {
        throw new Error(`${hex(key)}: ${e}`);
      });
    ok(r.line.startsWith("HD"), `${hex(key)}: ${r.line}`);
    n++;
  };
  try {
    const max = await maxValue(c);
    const fill250 = (head: string | Uint8Array, byte: number) => {
      const h = typeof head === "string" ? enc.encode(head) : head;
      const k = new Uint8Array(250).fill(byte);
      k.set(h.subarray(0, 250));
      return k;
    };
    const shaped: Uint8Array[] = [
      fill250("", 0x25), // all '%': metadump escapes each
      fill250("", 0x2b), // all '+': must not decode to spaces
      fill250("%25%2B+", 0x41), // escape-looking text, kept literal
      enc.encode("é".repeat(125)), // 250 bytes of UTF-8
      enc.encode("ключ:日本語:🔑"),
      fill250("tab\t", 0x09), // control bytes text keys may hold: 250 bytes, too
      fill250("del", 0x7f),
      fill250("one", 0x01),
      fill250("cr\r", 0x72),
      new Uint8Array([0xff, 0xfe, 0x80, 0xc0]), // not UTF-8
      new Uint8Array([0x20, 0x00, 0x0a, 0x0d, 0x41]), // space, NUL, LF: binary (b) only
      bytes(186), // the longest key whose base64 fits in 250 characters
    ];
    for (let i = 0; i < shaped.length; i++) {
      await put(shaped[i], bytes(i * 37), i === 0 ? 0xffffffff : i, i % 3 === 0 ? 0 : 3600 + i);
    }
    const crlf = new Uint8Array(1000).fill(0x0d);
    for (let i = 1; i < crlf.length; i += 2) crlf[i] = 0x0a;
    await put(enc.encode("crlf"), crlf, 0, 0);
    await put(enc.encode("empty"), new Uint8Array(0), 0xffffffff, 0);
    await put(enc.encode("empty-ttl"), new Uint8Array(0), 0, 100);
    await put(new Uint8Array(250).fill(0x6d), bytes(max), 7, 0); // the largest item
    await put(enc.encode("almost-max"), bytes(max - 300), 0xffffffff, 500);
    // Over 30 days: memcached takes T as a unix time then.
    const far = Math.floor(Date.now() / 1000) + 90 * 86400;
    await put(enc.encode("far"), enc.encode("far"), 1, far);
    for (let i = 0; i < 1500; i++) {
      const klen = 1 + Math.floor(rand() * 250);
      const k = bytes(klen).map((b) => (b === 0x20 || b === 0x0a || b === 0 ? 0x5f : b));
      const vlen = rand() < 0.05 ? Math.floor(rand() * 200_000) : Math.floor(rand() * 300);
      const flags = Math.floor(rand() * 0x100000000);
      const ttl = rand() < 0.5 ? 0 : 60 + Math.floor(rand() * 100_000);
      await put(k, bytes(vlen), flags, ttl);
    }
  } finally {
    c.close();
  }
  return n;
}

async function replicate(args: string[]): Promise<{ code: number; out: string }> {
  const r = await runMemrep(["replicate", ...args, "--json"], { timeoutMs: 60_000 });
  return { code: r.code, out: `${r.stdout}\n${r.stderr}` };
}

async function withServers(
  fn: (src: ProcessHandle, mc: ProcessHandle, serve: ProcessHandle) => Promise<void>,
): Promise<void> {
  const started: ProcessHandle[] = [];
  try {
    for (let i = 0; i < 2; i++) started.push(await startMemcached(["-I", "2m", "-m", "256"]));
    started.push(await startMemrep(["serve", "-I", "2m", "-m", "256"]));
    await fn(started[0], started[1], started[2]);
  } finally {
    for (const s of started) await s.stop();
  }
}

Deno.test({
  name: "every key shape, empty and largest values, extreme flags and TTLs copy byte for byte",
  ignore,
  async fn() {
    await withServers(async (src, mc, serve) => {
      const n = await fill(src.port, mulberry32(SEED));
      const addr = (p: ProcessHandle) => `127.0.0.1:${p.port}`;
      // Both targets in one run, then serve as a source in its own right.
      const a = await replicate(["--from", addr(src), "--to", addr(mc), "--to", addr(serve)]);
      equal(a.code, 0, a.out);
      ok(a.out.includes(`"copied":${n},`), a.out);
      equal(await sameAs(src.port, mc.port), n);
      equal(await sameAs(src.port, serve.port), n);
      await (async () => {
        const c = await Client.connect("127.0.0.1", mc.port);
        await c.flushAll();
        c.close();
      })();
      const b = await replicate(["--from", addr(serve), "--to", addr(mc)]);
      equal(b.code, 0, b.out);
      equal(await sameAs(src.port, mc.port), n);
    });
  },
});

Deno.test({
  name:
    "dump then restore is byte for byte; a dump of 0 items restores 0 items; unwritable paths are named",
  ignore,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "memrep-items-" });
    try {
      await withServers(async (src, mc, serve) => {
        const addr = (p: ProcessHandle) => `127.0.0.1:${p.port}`;
        const empty = `${dir}/empty.mrd`;
        const e = await replicate(["--from", addr(src), "--dump", empty]);
        equal(e.code, 0, e.out);
        ok(e.out.includes(`"copied":0,`), e.out);
        const r0 = await replicate(["--restore", empty, "--to", addr(mc)]);
        equal(r0.code, 0, r0.out);
        ok(r0.out.includes(`"copied":0,`), r0.out);

        // Paths that cannot be written or read: named, exit 1, nothing copied.
        const missing = `${dir}/no/such/dir/x.mrd`;
        const m = await replicate(["--from", addr(src), "--dump", missing]);
        equal(m.code, 1, m.out);
        ok(m.out.includes(`cannot create dump ${missing}: No such file or directory`), m.out);
        const gone = await replicate(["--restore", missing, "--to", addr(mc)]);
        equal(gone.code, 1, gone.out);
        ok(gone.out.includes(`cannot open dump ${missing}: No such file or directory`), gone.out);

        const n = await fill(src.port, mulberry32(SEED + 1));
        const file = `${dir}/all.mrd`;
        const d = await replicate(["--from", addr(src), "--dump", file]);
        equal(d.code, 0, d.out);
        ok(d.out.includes(`"copied":${n},`), d.out);
        const r = await replicate(["--restore", file, "--to", addr(mc), "--to", addr(serve)]);
        equal(r.code, 0, r.out);
        equal(await sameAs(src.port, mc.port), n);
        equal(await sameAs(src.port, serve.port), n);
      });
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name:
    "a dump's key no command can carry is refused by name, never sent: its value is not run as commands",
  ignore,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "memrep-items-" });
    try {
      const file = `${dir}/long.mrd`;
      const enc = new TextEncoder();
      const f = await Deno.open(file, { write: true, create: true, truncate: true });
      try {
        const w = new DumpWriter(f);
        await w.writeHeader({ created: Math.floor(Date.now() / 1000), source: "test" });
        await w.add(enc.encode("before"), enc.encode("1"), 1, 0);
        // The format takes keys of up to 65,535 bytes; memcached reads the value of a
        // refused one as commands.
        await w.add(enc.encode("L".repeat(251)), enc.encode("set evil 0 0 1\r\nX\r\n"), 0, 0);
        await w.add(new Uint8Array(187).fill(0x20), enc.encode("set evil2 0 0 1\r\nY\r\n"), 0, 0);
        await w.add(new Uint8Array(186).fill(0x20), enc.encode("spaces"), 2, 0);
        await w.add(enc.encode("after"), enc.encode("2"), 3, 0);
        await w.end();
      } finally {
        f.close();
      }
      await withServers(async (_src, mc, serve) => {
        for (const t of [mc, serve]) {
          const addr = `127.0.0.1:${t.port}`;
          const r = await replicate(["--restore", file, "--to", addr]);
          equal(r.code, 1, r.out);
          ok(r.out.includes(`"copied":3,`) && r.out.includes(`"failed":2,`), r.out);
          ok(r.out.includes(`target ${addr} refused 2 items: key longer than 250 bytes`), r.out);
          const c = await Client.connect("127.0.0.1", t.port);
          const got = await c.get(["before", "after", "evil", "evil2"]);
          c.close();
          equal([...got.keys()].join(" "), "before after", `${t.name}: what the dump put there`);
        }
      });
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "a dump whose reader goes away (--dump - into a closed pipe) names the dump, exit 1",
  ignore,
  async fn() {
    await withServers(async (src) => {
      const c = await Client.connect("127.0.0.1", src.port);
      const v = new Uint8Array(1000);
      await Promise.all(Array.from({ length: 5000 }, (_, i) => c.set(`p${i}`, v)));
      c.close();
      const { cmd, args } = memrepCommand();
      const p = new Deno.Command(cmd, {
        args: [...args, "replicate", "--from", `127.0.0.1:${src.port}`, "--dump", "-"],
        stdout: "piped",
        stderr: "piped",
      }).spawn();
      const reader = p.stdout.getReader();
      await reader.read(); // the first bytes, then the pipe closes
      await reader.cancel();
      const [status, err] = await Promise.all([p.status, new Response(p.stderr).text()]);
      equal(status.code, 1, err);
      ok(err.includes("cannot write dump stdout: Broken pipe"), err);
    });
  },
});

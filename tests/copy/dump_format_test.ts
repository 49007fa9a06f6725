import { deepEqual, equal, ok, rejects, throws } from "../helpers/assert.ts";
import {
  type ByteSink,
  type ByteSource,
  DumpError,
  DumpReader,
  DumpWriter,
} from "../../lib/copy/dump_format.ts";
import { crc32 } from "../../lib/copy/crc32.ts";
import { mulberry32 } from "../helpers/random.ts";
import { keyMatcher } from "../../lib/copy/replicate.ts";
import { progressLine, summaryLine } from "../../lib/copy/progress.ts";

class MemorySink implements ByteSink {
  chunks: Uint8Array[] = [];
  write(p: Uint8Array): Promise<number> {
    // Take at most 1000 bytes per call: writers must loop on short writes.
    const n = Math.min(p.length, 1000);
    this.chunks.push(p.slice(0, n));
    return Promise.resolve(n);
  }
  bytes(): Uint8Array {
    const n = this.chunks.reduce((a, c) => a + c.length, 0);
    const out = new Uint8Array(n);
    let o = 0;
    for (const c of this.chunks) {
      out.set(c, o);
      o += c.length;
    }
    return out;
  }
}

/** Serves `data` in reads of at most `step` bytes. */
function memorySource(data: Uint8Array, step = 777): ByteSource {
  let pos = 0;
  return {
    read(p: Uint8Array): Promise<number | null> {
      if (pos >= data.length) return Promise.resolve(null);
      const n = Math.min(p.length, step, data.length - pos);
      p.set(data.subarray(pos, pos + n));
      pos += n;
      return Promise.resolve(n);
    },
  };
}

interface Entry {
  key: number[];
  value: number[];
  flags: number;
  exp: number;
}

function sampleItems(): Entry[] {
  const items: Entry[] = [];
  for (let i = 0; i < 300; i++) {
    const value = new Uint8Array(i === 7 ? 200_000 : i % 50);
    for (let j = 0; j < value.length; j++) value[j] = (i * 31 + j) & 0xff;
    items.push({
      key: [...new TextEncoder().encode(`key:${i}`)],
      value: [...value],
      flags: i === 3 ? 0xffffffff : i,
      exp: i % 3 === 0 ? 0 : 1_900_000_000 + i,
    });
  }
  items.push({ key: [0, 1, 2, 255, 32, 10], value: [13, 10], flags: 1, exp: 2 ** 40 });
  return items;
}

async function writeDump(items: Entry[]): Promise<Uint8Array> {
  const sink = new MemorySink();
  const w = new DumpWriter(sink);
  await w.writeHeader({ created: 1_700_000_000, source: "127.0.0.1:11211" });
  for (const it of items) {
    await w.add(new Uint8Array(it.key), new Uint8Array(it.value), it.flags, it.exp);
  }
  await w.end();
  return sink.bytes();
}

async function readAll(data: Uint8Array, step?: number): Promise<Entry[]> {
  const r = new DumpReader(memorySource(data, step));
  await r.readHeader();
  const out: Entry[] = [];
  for (;;) {
    const it = await r.next();
    if (it === undefined) break;
    out.push({ key: [...it.key], value: [...it.value], flags: it.flags, exp: it.exp });
  }
  return out;
}

Deno.test("crc32 matches the IEEE check value", () => {
  equal(crc32(new TextEncoder().encode("123456789")), 0xcbf43926);
  equal(crc32(new Uint8Array(0)), 0);
});

Deno.test("a dump round-trips keys, binary values, flags and expiry, read in any chunking", async () => {
  const items = sampleItems();
  const data = await writeDump(items);
  equal(new TextDecoder().decode(data.subarray(0, 4)), "MRD1");
  deepEqual(await readAll(data), items);
  deepEqual(await readAll(data, 1), items);
  const r = new DumpReader(memorySource(data));
  const meta = await r.readHeader();
  equal(meta.source, "127.0.0.1:11211");
  equal(meta.created, 1_700_000_000);
});

Deno.test("an empty dump is valid", async () => {
  deepEqual(await readAll(await writeDump([])), []);
});

Deno.test("a flipped byte is reported at the item where it broke, after the good items", async () => {
  const items = sampleItems();
  const data = await writeDump(items);
  // Find item 120's record by reading up to it and noting the offset.
  const r = new DumpReader(memorySource(data));
  await r.readHeader();
  for (let i = 0; i < 120; i++) await r.next();
  const at = r.offset;
  const bad = data.slice();
  bad[at + 8 + 20] ^= 0x40; // inside item 120's body
  const seen: number[] = [];
  const reader = new DumpReader(memorySource(bad));
  await reader.readHeader();
  const err = await (async () => {
    try {
      for (;;) {
        const it = await reader.next();
        if (it === undefined) return undefined;
        seen.push(seen.length);
      }
    } catch (e) {
      return e;
    }
  })();
  ok(err instanceof DumpError, String(err));
  equal(err.itemIndex, 120);
  equal(err.offset, at);
  ok(/checksum/.test(err.message) && /item 120/.test(err.message), err.message);
  equal(seen.length, 120);
});

Deno.test("a bit flipped anywhere (seeded) stops the read at its record, after intact items", async () => {
  const seed = Number(Deno.env.get("MEMREP_SEED") ?? 4242);
  console.log(`bit flip seed ${seed} (MEMREP_SEED=${seed} replays it)`);
  const rand = mulberry32(seed);
  const items = sampleItems().filter((_, i) => i !== 7).slice(0, 40); // no 200 KB item: fast
  const data = await writeDump(items);
  // Where each record starts: records[j] is item j's (records[items.length] the end record).
  const records: number[] = [];
  const r = new DumpReader(memorySource(data));
  await r.readHeader();
  for (;;) {
    records.push(r.offset);
    if (await r.next() === undefined) break;
  }
  for (let trial = 0; trial < 3000; trial++) {
    const at = Math.floor(rand() * data.length);
    const bad = data.slice();
    bad[at] ^= 1 << Math.floor(rand() * 8);
    const want = records.findLastIndex((o) => o <= at); // -1: in the header
    const reader = new DumpReader(memorySource(bad, 1 + Math.floor(rand() * 5000)));
    const read: Entry[] = [];
    const err = await (async () => {
      try {
        await reader.readHeader();
        for (;;) {
          const it = await reader.next();
          if (it === undefined) return undefined;
          read.push({ key: [...it.key], value: [...it.value], flags: it.flags, exp: it.exp });
        }
      } catch (e) {
        return e;
      }
    })();
    const where = `flip at byte ${at} (record ${want}), trial ${trial}`;
    ok(err instanceof DumpError, `${where}: read as complete`);
    equal(err.itemIndex, Math.max(0, want), `${where}: ${err.message}`);
    deepEqual(read, items.slice(0, Math.max(0, want)), where);
  }
});

Deno.test("a dump cut anywhere is reported truncated, never read as complete", async () => {
  const data = await writeDump(sampleItems().slice(0, 20));
  for (let cut = 0; cut < data.length; cut += cut < 4096 ? 7 : 4093) {
    await rejects(readAll(data.subarray(0, cut)), DumpError, `cut at ${cut}`);
  }
  // Cut exactly before the end record: every item is intact but the end is missing.
  const err = await readAll(data.subarray(0, data.length - 18)).then(() => undefined, (e) => e);
  ok(err instanceof DumpError);
  ok(/no end record/.test(err.message) && /item 20/.test(err.message), err.message);
});

Deno.test("files that are not dumps are refused at the header", async () => {
  const r = new DumpReader(memorySource(new TextEncoder().encode("VALUE k 0 1\r\nx\r\nEND\r\n")));
  await rejects(r.readHeader(), /not a memrep dump/);
  const v2 = new DumpReader(memorySource(new TextEncoder().encode("MRD2\0\0\0\0")));
  await rejects(v2.readHeader(), /unsupported dump format version 'MRD2'/);
});

Deno.test("--match: plain text is a prefix, * ? [] make a glob over the whole key", () => {
  const k = (s: string) => new TextEncoder().encode(s);
  const prefix = keyMatcher("user:");
  ok(prefix(k("user:1")));
  ok(!prefix(k("users")));
  const glob = keyMatcher("user:*:name");
  ok(glob(k("user:42:name")));
  ok(!glob(k("user:42:mail")));
  const q = keyMatcher("s?ss[0-9]");
  ok(q(k("sess7")));
  ok(!q(k("sess")));
  const neg = keyMatcher("a[!b]c");
  ok(neg(k("axc")));
  ok(!neg(k("abc")));
  ok(keyMatcher("*")(new Uint8Array([0, 255, 10])));
});

Deno.test("--match: a glob reads UTF-8 keys as text, other keys byte by byte, regex syntax literally", () => {
  const k = (s: string) => new TextEncoder().encode(s);
  ok(keyMatcher("k?")(k("ké")), "? is one character, not one byte");
  ok(!keyMatcher("k?")(k("kéé")));
  ok(keyMatcher("?")(k("🔑")));
  ok(keyMatcher("k[éè]x")(k("kèx")), "a class of non-ASCII characters");
  ok(!keyMatcher("k[!é]")(k("ké")));
  ok(keyMatcher("k[!é]")(k("ka")));
  ok(keyMatcher("k?")(new Uint8Array([0x6b, 0xff])), "not UTF-8: one byte is one character");
  ok(
    keyMatcher("\ufeff*")(new Uint8Array([0xef, 0xbb, 0xbf, 0x41])),
    "a leading BOM is a key byte",
  );
  ok(keyMatcher("a.b*")(k("a.bc")));
  ok(!keyMatcher("a.b*")(k("axbc")), ". is literal");
  ok(keyMatcher("(x)|$^+*")(k("(x)|$^+y")));
  ok(keyMatcher("k[\\]")(k("k\\")));
  ok(keyMatcher("[[]x")(k("[x")));
  ok(keyMatcher("k[a*")(k("k[a1")), "an unclosed [ is literal");
  throws(() => keyMatcher("k[z-a]"), SyntaxError);
});

Deno.test("progress and summary lines carry counts, rate and ETA", () => {
  const line = progressLine(
    { copied: 50_000, skipped: 2, failed: 1, bytes: 5_000_000 },
    1,
    100_000,
  );
  ok(line.includes("copied 50,000/100,000 items"), line);
  ok(line.includes("5.0 MB") && line.includes("50,000 items/s") && line.includes("ETA 1s"), line);
  ok(line.includes("skipped 2") && line.includes("failed 1"), line);
  const s = summaryLine({
    copied: 10,
    skipped: 3,
    failed: 1,
    bytes: 100,
    seconds: 2,
    itemsPerSecond: 5,
    expired: 1,
    missing: 2,
    existing: 0,
    interrupted: true,
    errors: [],
  });
  equal(
    s,
    "memrep replicate: interrupted: copied 10, skipped 3 (expired 1, missing 2, existing 0), " +
      "failed 1 in 2.00 s (5 items/s, 100 B)",
  );
});

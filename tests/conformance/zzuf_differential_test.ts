/**
 * zzuf differential: a script of text and meta commands is mutated by zzuf
 * (flipped bits, control bytes, lost separators) under many seeds; each
 * mutation goes to memcached 1.6.18 and to memrep (serve, and the proxy in
 * front of another memcached) on a fresh connection, and the replies must
 * be the same bytes once CAS values and memory sizes, which legitimately
 * differ, are masked. Both keep serving throughout. MEMREP_ZZUF_SEEDS=a-b
 * runs other seeds.
 */

import { equal } from "../helpers/assert.ts";
import {
  binaryPath,
  ignoreUnless,
  type ProcessHandle,
  startMemcached,
  startMemrep,
  writeTempFile,
} from "../helpers/mod.ts";

const SCRIPT = [
  "set a 0 0 5\r\nhello\r\n",
  "get a\r\n",
  "append a 0 0 3\r\nxyz\r\n",
  "gets a\r\n",
  "incr n 1\r\n",
  "set n 0 0 2\r\n10\r\n",
  "incr n 5\r\n",
  "decr n 100\r\n",
  "touch a 100\r\n",
  "mg a v f t c\r\n",
  "ms b 3 T0 F5\r\nabc\r\n",
  "mg b v f k\r\n",
  "ma n D7\r\n",
  "md b q\r\n",
  "mn\r\n",
  "cas a 0 0 1 987654321\r\nZ\r\n",
  "prepend a 1 0 2\r\n<<\r\n",
  "mg YWJj b v\r\n",
  "delete a\r\n",
  "get a b n\r\n",
  "verbosity 1\r\n",
  "flush_all 0\r\n",
  "get n\r\n",
].join("");

const latin1 = new TextDecoder("latin1");

/** Masks what two correct servers may differ in: CAS values and item sizes. */
function normalise(reply: Uint8Array): string {
  return latin1.decode(reply)
    .replace(/^(VALUE \S+ \d+ \d+) \d+\r\n/gm, "$1 CAS\r\n")
    .replace(/ c\d+/g, " cN")
    .replace(/cas=\d+/g, "cas=N")
    .replace(/size=\d+/g, "size=N");
}

/** Sends `data` after a flush_all on a new connection; everything read until the server closes. */
async function exchange(port: number, data: Uint8Array): Promise<Uint8Array> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  const chunks: Uint8Array[] = [];
  const timer = setTimeout(() => conn.close(), 3000);
  try {
    await conn.write(new TextEncoder().encode("flush_all\r\n"));
    await conn.write(data);
    await conn.closeWrite();
    const buf = new Uint8Array(65536);
    for (;;) {
      const n = await conn.read(buf);
      if (n === null) break;
      chunks.push(buf.slice(0, n));
    }
  } catch {
    /* closed by the timer or reset: compare what came */
  } finally {
    clearTimeout(timer);
    try {
      conn.close();
    } catch { /* closed */ }
  }
  const out = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
  let o = 0;
  for (const c of chunks) (out.set(c, o), o += c.length);
  return out;
}

function seedRange(fallback: [number, number]): [number, number] {
  const m = /^(\d+)-(\d+)$/.exec(Deno.env.get("MEMREP_ZZUF_SEEDS") ?? "");
  return m ? [Number(m[1]), Number(m[2])] : fallback;
}

async function mutations(from: number, to: number): Promise<Uint8Array[]> {
  const file = await writeTempFile(SCRIPT, "memrep-zzuf-");
  try {
    const zzuf = binaryPath("zzuf") as string;
    const out: Uint8Array[] = [];
    for (let s = from; s < to; s++) {
      const r = await new Deno.Command(zzuf, {
        args: ["-s", String(s), "-r", s % 2 === 0 ? "0.01" : "0.03", "cat", file],
        stdout: "piped",
        stderr: "null",
      }).output();
      out.push(r.stdout);
    }
    return out;
  } finally {
    await Deno.remove(file);
  }
}

async function compare(
  what: string,
  reference: number,
  subject: ProcessHandle,
  from: number,
  to: number,
): Promise<void> {
  const inputs = await mutations(from, to);
  const diffs: string[] = [];
  let compared = 0;
  for (let i = 0; i < inputs.length; i++) {
    // memrep takes newer memcached's meta E flag (README); 1.6.18 refuses it.
    if (/(^|\n)m[gsda] [^\n]* E/.test(latin1.decode(inputs[i]))) continue;
    compared++;
    const [want, got] = await Promise.all([
      exchange(reference, inputs[i]),
      exchange(subject.port, inputs[i]),
    ]);
    const a = normalise(want), b = normalise(got);
    if (a !== b && diffs.length < 3) {
      diffs.push(
        `seed ${from + i}\n in: ${JSON.stringify(latin1.decode(inputs[i]))}\n memcached: ${
          JSON.stringify(a)
        }\n ${what}: ${JSON.stringify(b)}`,
      );
    }
    equal(subject.exited(), false, `${what} exited at seed ${from + i}`);
  }
  equal(compared > (to - from) / 2, true, `most mutations compared (${compared})`);
  equal(diffs.length, 0, `${what} replied differently from memcached:\n${diffs.join("\n")}`);
}

Deno.test({
  name: "zzuf-mutated text and meta commands: serve replies as memcached 1.6.18",
  ignore: ignoreUnless("zzuf differential (serve)", ["memcached", "zzuf"]),
  async fn() {
    const [from, to] = seedRange([0, 300]);
    const mc = await startMemcached();
    const serve = await startMemrep(["serve", "-U", "0"]);
    try {
      await compare("memrep serve", mc.port, serve, from, to);
    } finally {
      await Promise.all([serve.stop(), mc.stop()]);
    }
  },
});

Deno.test({
  name: "zzuf-mutated text and meta commands: the proxy replies as memcached 1.6.18",
  ignore: ignoreUnless("zzuf differential (proxy)", ["memcached", "zzuf"]),
  async fn() {
    const [from, to] = seedRange([1000, 1200]);
    const mc = await startMemcached();
    const backend = await startMemcached();
    const proxy = await startMemrep(["proxy", "-s", `127.0.0.1:${backend.port}`]);
    try {
      await compare("memrep proxy", mc.port, proxy, from, to);
    } finally {
      await Promise.all([proxy.stop(), backend.stop(), mc.stop()]);
    }
  },
});

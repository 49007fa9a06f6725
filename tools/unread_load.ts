/**
 * Memory under clients that never read: opens `--conns` connections to
 * `--port`, each pipelining large gets (single text gets, `--mkeys`-key multi-gets
 * and binary getks in turn) it never reads, and prints the RSS of `--pid`
 * (/proc/PID/status) every second; meanwhile one reading client checks
 * that it still gets the right value; then the hogs close and the RSS is
 * printed once more.
 *
 *   deno run -A tools/unread_load.ts --port 11211 --pid 1234 [--conns 300]
 *     [--size 262144] [--keys 20] [--gets 200] [--seconds 15] [--proxy 1] [--modes 012] [--mkeys 10]
 * @module
 */

const args: Record<string, string> = {};
for (let i = 0; i + 1 < Deno.args.length; i += 2) {
  args[Deno.args[i].replace(/^--/, "")] = Deno.args[i + 1];
}
const port = Number(args.port);
const pid = Number(args.pid);
const conns = Number(args.conns ?? 300);
const size = Number(args.size ?? 262144);
const keys = Number(args.keys ?? 20);
const gets = Number(args.gets ?? 200);
const seconds = Number(args.seconds ?? 15);
const mkeys = Number(args.mkeys ?? 10);
const enc = new TextEncoder();

function rssMb(): number {
  const status = Deno.readTextFileSync(`/proc/${pid}/status`);
  const kb = /VmRSS:\s+(\d+)\s+kB/.exec(status);
  return kb ? Number(kb[1]) / 1024 : NaN;
}

/** One binary GETK request packet for `key`. */
function getk(key: string): Uint8Array {
  const k = enc.encode(key);
  const p = new Uint8Array(24 + k.length);
  const dv = new DataView(p.buffer);
  p[0] = 0x80;
  p[1] = 0x0c;
  dv.setUint16(2, k.length);
  dv.setUint32(8, k.length);
  p.set(k, 24);
  return p;
}

/** Reads until `end` closes the reply; returns the reply's text length. */
async function request(c: Deno.Conn, line: Uint8Array, end: string): Promise<string> {
  await c.write(line);
  const buf = new Uint8Array(size * 2 + 4096);
  let have = 0;
  while (true) {
    const n = await c.read(buf.subarray(have));
    if (n === null) throw new Error("closed");
    have += n;
    const s = new TextDecoder().decode(buf.subarray(Math.max(0, have - 16), have));
    if (s.endsWith(end)) return new TextDecoder().decode(buf.subarray(0, have));
  }
}

const reader = await Deno.connect({ hostname: "127.0.0.1", port });
const value = (i: number) => String.fromCharCode(97 + i % 26).repeat(size - i);
for (let i = 0; i < keys; i++) {
  const v = value(i);
  const r = await request(reader, enc.encode(`set ul:${i} 0 0 ${v.length}\r\n${v}\r\n`), "\r\n");
  if (r !== "STORED\r\n") throw new Error(`set: ${r}`);
}

function pipeline(kind: number): Uint8Array {
  const parts: Uint8Array[] = [];
  for (let g = 0; g < gets; g++) {
    const i = g % keys;
    if (kind === 0) parts.push(enc.encode(`get ul:${i}\r\n`));
    else if (kind === 1) {
      const ks = Array.from({ length: mkeys }, (_, j) => `ul:${(i + j) % keys}`);
      parts.push(enc.encode(`get ${ks.join(" ")}\r\n`));
    } else parts.push(getk(`ul:${i}`));
  }
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}
const batches = [pipeline(0), pipeline(1), pipeline(2)];
/** Which pipelines the connections send in turn: 0 text gets, 1 text 10-key gets, 2 binary getks. */
const modes = (args.modes ?? "012").split("").map(Number);

const base = rssMb();
console.log(`base RSS ${base.toFixed(0)} MB; ${conns} unread connections, values ${size} B`);
const hogs: Deno.Conn[] = [];
for (let c = 0; c < conns; c++) {
  const h = await Deno.connect({ hostname: "127.0.0.1", port });
  hogs.push(h);
  h.write(batches[modes[c % modes.length]]).catch(() => {});
}
let peak = base;
const want = `VALUE ul:3 0 ${size - 3}\r\n${value(3)}\r\nEND\r\n`;
for (let s = 1; s <= seconds; s++) {
  await new Promise((r) => setTimeout(r, 1000));
  const now = rssMb();
  peak = Math.max(peak, now);
  const t0 = performance.now();
  const got = await request(reader, enc.encode("get ul:3\r\n"), "END\r\n");
  const ms = performance.now() - t0;
  let held = "";
  if (args.proxy !== undefined) {
    const st = await request(reader, enc.encode("stats proxy\r\n"), "END\r\n");
    const m = /STAT buffered_bytes (\d+)/.exec(st);
    held = m ? `; buffered_bytes ${(Number(m[1]) / 1048576).toFixed(0)} MB` : "";
  }
  console.log(
    `t=${s}s RSS ${now.toFixed(0)} MB (+${(now - base).toFixed(0)}); reader ${
      got === want ? "ok" : "WRONG"
    } in ${ms.toFixed(1)} ms${held}`,
  );
}
for (const h of hogs) {
  try {
    h.close();
  } catch { /* closed */ }
}
await new Promise((r) => setTimeout(r, 3000));
const after = rssMb();
console.log(
  `peak +${(peak - base).toFixed(0)} MB; 3 s after the hogs closed: +${
    (after - base).toFixed(0)
  } MB`,
);
if (args.proxy !== undefined) {
  const st = await request(reader, enc.encode("stats proxy\r\n"), "END\r\n");
  console.log(st.split("\r\n").filter((l) => l.includes("buffered")).join("; "));
}
reader.close();

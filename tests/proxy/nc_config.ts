/**
 * Helpers for the nutcracker-config tests: start `memrep proxy -c`, bulk
 * pipelined sets through a proxy, and bulk `mg` reads straight from the
 * backends to see which server holds each key.
 * @module
 */

import {
  freePort,
  memrepCommand,
  type ProcessHandle,
  startProcess,
  waitForPort,
} from "../helpers/mod.ts";

/** Writes `yaml` (with `{port}` and `{port2}` filled) to a temp file and starts `memrep proxy -c` on it. */
export async function startConfigProxy(
  yaml: string,
  extra: string[] = [],
): Promise<{ proc: ProcessHandle; file: string; port: number; port2: number; statsPort: number }> {
  const port = freePort();
  const port2 = freePort();
  const statsPort = freePort();
  const dir = await Deno.makeTempDir({ prefix: "memrep-ncconf-" });
  const file = `${dir}/nutcracker.yml`;
  await Deno.writeTextFile(file, fill(yaml, port, port2));
  const { cmd, args } = memrepCommand();
  const proc = await startProcess(
    "memrep proxy -c",
    cmd,
    [
      ...args,
      "proxy",
      "-c",
      file,
      "--stats-port",
      String(statsPort),
      "--stats-addr",
      "127.0.0.1",
      "-v",
      ...extra,
    ],
    port,
    { cleanup: () => Deno.remove(dir, { recursive: true }) },
  );
  // Each pool and the stats port listen on their own: waiting for the first is not enough.
  for (const p of yaml.includes("{port2}") ? [port2, statsPort] : [statsPort]) {
    if (!await waitForPort(p, 15_000, "127.0.0.1", () => !proc.exited())) {
      await proc.stop();
      throw new Error(`memrep proxy -c did not listen on 127.0.0.1:${p}`);
    }
  }
  return { proc, file, port, port2, statsPort };
}

/** `{port}`/`{port2}` filled in. */
export function fill(yaml: string, port: number, port2 = 0): string {
  return yaml.replaceAll("{port2}", String(port2)).replaceAll("{port}", String(port));
}

/** Latin-1 bytes of a string. */
function latin1(s: string): Uint8Array {
  const b = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) b[i] = s.charCodeAt(i);
  return b;
}

/** Send `payload`, read until `done(last bytes, lines so far)` says the reply is complete. */
export async function exchange(
  port: number,
  payload: string,
  done: (tail: string, newlines: number) => boolean,
  timeoutMs = 20_000,
): Promise<string> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  try {
    const writing = (async () => {
      const b = latin1(payload);
      let off = 0;
      while (off < b.length) off += await conn.write(b.subarray(off));
    })();
    const buf = new Uint8Array(65536);
    const parts: string[] = [];
    let newlines = 0;
    let tail = "";
    const deadline = Date.now() + timeoutMs;
    while (true) {
      if (Date.now() > deadline) throw new Error(`timed out; got ...${tail}`);
      const n = await conn.read(buf);
      if (n === null) throw new Error(`EOF; got ...${tail}`);
      let s = "";
      for (let i = 0; i < n; i++) {
        s += String.fromCharCode(buf[i]);
        if (buf[i] === 10) newlines++;
      }
      parts.push(s);
      tail = (tail + s).slice(-16);
      if (done(tail, newlines)) break;
    }
    await writing;
    return parts.join("");
  } finally {
    conn.close();
  }
}

/** `set key 0 0 len` for every key through `port`; throws unless every reply is STORED. */
export async function setAll(port: number, keys: readonly string[], value: string): Promise<void> {
  // In batches: a proxy's per-request timeout counts from when it queued the request.
  for (let i = 0; i < keys.length; i += 1000) await setBatch(port, keys.slice(i, i + 1000), value);
}

async function setBatch(port: number, keys: readonly string[], value: string): Promise<void> {
  const payload = keys.map((k) => `set ${k} 0 0 ${value.length}\r\n${value}\r\n`).join("");
  const text = await exchange(port, payload, (_, n) => n >= keys.length);
  const lines = text.split("\r\n").filter((l) => l !== "");
  const bad = lines.filter((l) => l !== "STORED");
  if (bad.length > 0 || lines.length !== keys.length) {
    throw new Error(`set through ${port}: ${bad.length} bad replies, e.g. ${bad.slice(0, 3)}`);
  }
}

/** Each key's value on the memcached at `port` (undefined: missing), read with `mg k v`. */
export async function readAll(
  port: number,
  keys: readonly string[],
): Promise<(string | undefined)[]> {
  const payload = keys.map((k) => `mg ${k} v\r\n`).join("") + "mn\r\n";
  const text = await exchange(port, payload, (t) => t.endsWith("MN\r\n"));
  const lines = text.split("\r\n");
  const out: (string | undefined)[] = [];
  for (let i = 0; i < lines.length && out.length < keys.length; i++) {
    const l = lines[i];
    if (l === "EN") out.push(undefined);
    else if (l.startsWith("VA ")) out.push(lines[++i]);
    else throw new Error(`mg on ${port}: unexpected '${l}'`);
  }
  if (out.length !== keys.length) {
    throw new Error(`mg on ${port}: ${out.length} of ${keys.length} replies`);
  }
  return out;
}

/**
 * For each key, the index (into `ports`) of the one backend holding
 * `value`; -1 when none does, -2 when more than one does.
 */
export async function locate(
  ports: readonly number[],
  keys: readonly string[],
  value: string,
): Promise<number[]> {
  const found = await Promise.all(ports.map((p) => readAll(p, keys)));
  return keys.map((_, k) => {
    let at = -1;
    for (let s = 0; s < ports.length; s++) {
      if (found[s][k] !== value) continue;
      at = at === -1 ? s : -2;
    }
    return at;
  });
}

/** Read a whole stats-port document. */
export async function readStats(port: number): Promise<Record<string, unknown>> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  const chunks: Uint8Array[] = [];
  try {
    const buf = new Uint8Array(65536);
    while (true) {
      const n = await conn.read(buf);
      if (n === null) break;
      chunks.push(buf.slice(0, n));
    }
  } finally {
    try {
      conn.close();
    } catch { /* closed by peer */ }
  }
  const all = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
  let o = 0;
  for (const c of chunks) {
    all.set(c, o);
    o += c.length;
  }
  return JSON.parse(new TextDecoder().decode(all));
}

/**
 * Bursts of connections: thousands open at once, each answered once, all
 * closed (what a connection leaves behind, issue 9 item 8).
 * @module
 */

import { equal } from "./assert.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();

/**
 * Opens `n` connections to `port` (250 at a time), sends `line` on every
 * one once all are open, checks each reads `reply` (one line), then closes
 * them all.
 */
export async function connectionBurst(
  port: number,
  n: number,
  line: string,
  reply: string,
): Promise<void> {
  const conns: Deno.Conn[] = [];
  try {
    for (let i = 0; i < n; i += 250) {
      conns.push(
        ...await Promise.all(
          Array.from(
            { length: Math.min(250, n - i) },
            () => Deno.connect({ hostname: "127.0.0.1", port }),
          ),
        ),
      );
    }
    await Promise.all(conns.map(async (c) => {
      await c.write(enc.encode(line));
      const buf = new Uint8Array(256);
      let got = "";
      while (!got.endsWith("\r\n")) {
        const r = await c.read(buf);
        if (r === null) break;
        got += dec.decode(buf.subarray(0, r));
      }
      equal(got, reply);
    }));
  } finally {
    for (const c of conns) c.close();
  }
}

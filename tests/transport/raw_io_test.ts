/**
 * rawIo: Deno's read/write ops on a connection's resource behave as the
 * `Deno.Conn` methods do (bytes, end of stream as 0, errors a closing
 * server sees), and this Deno has them (else serve silently loses the
 * cheaper path: issue 14).
 * @module
 */

import { isDisconnect, RAW_OPS, rawIo } from "../../lib/transport/mod.ts";
import { equal, ok } from "../helpers/mod.ts";

async function pair(): Promise<{ a: Deno.Conn; b: Deno.Conn; close(): void }> {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  const [a, b] = await Promise.all([Deno.connect({ hostname: "127.0.0.1", port }), l.accept()]);
  l.close();
  return {
    a,
    b,
    close() {
      for (const c of [a, b]) {
        try {
          c.close();
        } catch { /* closed */ }
      }
    },
  };
}

Deno.test("rawIo reaches Deno's ops on this Deno", () => {
  ok(RAW_OPS, "Deno[Deno.internal].core.read/write/internalRidSymbol are missing");
});

Deno.test("rawIo moves random bytes both ways and reads 0 at the end of the stream", async () => {
  const p = await pair();
  try {
    const ia = rawIo(p.a), ib = rawIo(p.b);
    const data = new Uint8Array(200_000);
    for (let i = 0; i < data.length; i += 65536) {
      crypto.getRandomValues(data.subarray(i, Math.min(i + 65536, data.length)));
    }
    const got = new Uint8Array(data.length);
    const reader = (async () => {
      let n = 0;
      while (true) {
        const r = await ib.read(got.subarray(n, Math.min(n + 7000, got.length)));
        if (r === 0) break;
        n += r;
      }
      return n;
    })();
    let off = 0;
    while (off < data.length) off += await ia.write(data.subarray(off));
    p.a.close();
    equal(await reader, data.length);
    ok(got.every((x, i) => x === data[i]), "bytes differ");
    // The other way: b writes to a closed peer eventually fails as a disconnect.
    let err: unknown = null;
    try {
      for (let i = 0; i < 100; i++) await ib.write(new Uint8Array(65536));
    } catch (e) {
      err = e;
    }
    ok(err !== null && isDisconnect(err), `not a disconnect: ${err}`);
  } finally {
    p.close();
  }
});

Deno.test("rawIo: a read pending when the connection is closed fails as a disconnect", async () => {
  const p = await pair();
  try {
    const pending = rawIo(p.b).read(new Uint8Array(1024));
    await new Promise((r) => setTimeout(r, 50));
    p.b.close();
    let err: unknown = null;
    const n = await pending.catch((e) => {
      err = e;
      return -1;
    });
    ok(n === 0 || (err !== null && isDisconnect(err)), `read gave ${n}, error ${err}`);
  } finally {
    p.close();
  }
});

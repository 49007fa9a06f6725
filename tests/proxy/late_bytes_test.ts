/**
 * A backup copy lost on a timeout can still be applied by the backup later:
 * its bytes wait in the server's socket buffer until the server reads them,
 * which a hung server does only once it runs again, whenever that is. The
 * key must then stay dirty for the grace period after the first cleaning
 * delete the server answers, not after the loss: here the backup hangs
 * well past 2 x --timeout, and when it runs again the lost `set` is applied
 * just after the cleaning's delete. The key is deleted again, and the old
 * value never comes back.
 */

import { equal, ok, waitUntil } from "../helpers/assert.ts";
import { connect, ignoreUnless, startMemcached, startMemrep } from "../helpers/mod.ts";

interface Link {
  up: Deno.TcpConn;
  down: Deno.TcpConn;
  held: Uint8Array[];
  frozen: boolean;
  downClosed: boolean;
  /** Text forwarded to the server since the relay resumed. */
  sent: string;
  /** A reply went back to the proxy after `sent` held a cleaning delete of the watched key. */
  answered: boolean;
}

const latin1 = (b: Uint8Array) => String.fromCharCode(...b);

/** A relay to `port` that can hold every byte to the server (a hung server) and release them. */
function lateRelay(port: number, watchB64: string) {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const links: Link[] = [];
  let hung = false;
  const md = `md ${watchB64} b`;
  const endUp = (l: Link) => {
    try {
      l.up.closeWrite();
    } catch { /* closed */ }
  };
  const forward = async (l: Link, chunk: Uint8Array) => {
    if (!hung) l.sent += latin1(chunk);
    await l.up.write(chunk);
  };
  (async () => {
    for await (const down of listener) {
      const up = await Deno.connect({ hostname: "127.0.0.1", port });
      const l: Link = {
        up,
        down,
        held: [],
        frozen: false,
        downClosed: false,
        sent: "",
        answered: false,
      };
      links.push(l);
      (async () => {
        const buf = new Uint8Array(65536);
        try {
          for (;;) {
            const n = await down.read(buf);
            if (n === null) break;
            const chunk = buf.slice(0, n);
            if (hung || l.frozen) l.held.push(chunk);
            else await forward(l, chunk);
          }
        } catch { /* closed */ }
        // The proxy gave up on this connection; its bytes may still reach the server (late).
        l.downClosed = true;
        if (!hung && !l.frozen && l.held.length === 0) endUp(l); // the FIN follows the bytes
      })();
      (async () => {
        const buf = new Uint8Array(65536);
        try {
          for (;;) {
            const n = await up.read(buf);
            if (n === null) break;
            if (l.downClosed) continue;
            if (l.sent.includes(md)) l.answered = true;
            await down.write(buf.slice(0, n));
          }
        } catch { /* closed */ }
        try {
          down.close(); // the server closed: so does the relay
        } catch { /* closed */ }
      })();
    }
  })().catch(() => {});
  return {
    port: (listener.addr as Deno.NetAddr).port,
    links,
    hang() {
      hung = true;
    },
    /** The server runs again, but `keep`'s bytes stay held (it reads that socket last). */
    async resumeExcept(keep: Link) {
      keep.frozen = true;
      hung = false;
      for (const l of links) {
        if (l === keep) continue;
        const held = l.held.splice(0);
        for (const c of held) await forward(l, c);
        if (l.downClosed) endUp(l);
      }
    },
    async release(l: Link) {
      for (const c of l.held.splice(0)) await l.up.write(c);
      if (l.downClosed) endUp(l);
    },
    close() {
      listener.close();
      for (const l of links) {
        for (const c of [l.up, l.down]) {
          try {
            c.close();
          } catch { /* closed */ }
        }
      }
    },
  };
}

const NAME = "proxy: a lost copy applied by a hung backup after the cleaning's delete is " +
  "deleted again (grace period from the first answered delete)";
Deno.test({
  name: NAME,
  ignore: ignoreUnless(NAME, ["memcached"]),
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const key = "late:key";
    const primary = await startMemcached();
    const backup = await startMemcached();
    const relay = lateRelay(backup.port, btoa(key));
    const proxy = await startMemrep([
      "proxy",
      "-s",
      `127.0.0.1:${primary.port}`,
      "-b",
      `127.0.0.1:${relay.port}`,
      "--timeout",
      "300",
      "--retry",
      "100",
    ]);
    const c = await connect(proxy.port);
    const direct = await connect(backup.port);
    try {
      equal(await c.request("set warm 0 0 1\r\nw"), "STORED\r\n");
      await waitUntil(
        async () => (await direct.request("mg warm")) === "HD\r\n",
        "the warm-up copy on the backup",
      );
      relay.hang();
      equal(await c.request(`set ${key} 0 0 2\r\nv1`), "STORED\r\n");
      const first = relay.links.find((l) => l.held.some((b) => latin1(b).includes(key)));
      ok(first !== undefined, "the set's copy is held");
      // The copy times out (the proxy drops that connection); only then the delete, so its copy
      // goes on another connection and the set's copy is the last thing the backup applies.
      await waitUntil(() => first.downClosed, "the proxy giving up on the hung connection");
      equal(await c.request(`delete ${key}`), "DELETED\r\n");
      const lostAt = Date.now();
      await waitUntil(
        () => relay.links.every((l) => l === first || l.downClosed || l.held.length === 0),
        "the delete's copy to time out too",
      );
      // Hung well past 2 x --timeout (1 s at least) after the last loss.
      await new Promise((r) => setTimeout(r, Math.max(0, lostAt + 2500 - Date.now())));
      await relay.resumeExcept(first);
      await waitUntil(
        () => relay.links.some((l) => l !== first && !l.downClosed && l.answered),
        "a cleaning delete of the key answered",
        15_000,
      );
      await relay.release(first); // the lost set lands after that delete
      await waitUntil(
        async () =>
          (await c.stats("proxy")).get(`backup:127.0.0.1:${relay.port}:dirty_keys`) === "0",
        "the backup clean",
        15_000,
      );
      equal(await direct.request(`mg ${key}`), "EN\r\n", "the backup holds no old value");
      equal(await c.request(`get ${key}`), "END\r\n", "the deleted key does not come back");
    } finally {
      await c.close();
      await direct.close();
      await proxy.stop();
      relay.close();
      await primary.stop();
      await backup.stop();
    }
  },
});

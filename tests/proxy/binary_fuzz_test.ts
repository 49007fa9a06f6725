/**
 * A seeded fuzz of 5,000 random, broken and truncated binary packets
 * through `memrep proxy`: it never goes down, other connections keep
 * working, and most packets really reach the router.
 */

import { deepEqual, equal, ok } from "../helpers/assert.ts";
import { connect, ignoreUnless } from "../helpers/mod.ts";
import { OP, packet, text } from "../helpers/binary.ts";
import { getValue, proxyStats, seeded, startCluster } from "./cluster.ts";
import { cat, get, NEED, one, set } from "./binary_cluster.ts";

/** Extras length per opcode, as memcached wants them. */
const EXTRAS: Record<number, number> = {
  [OP.SET]: 8,
  [OP.ADD]: 8,
  [OP.REPLACE]: 8,
  [OP.SETQ]: 8,
  [OP.ADDQ]: 8,
  [OP.REPLACEQ]: 8,
  [OP.INCR]: 20,
  [OP.DECR]: 20,
  [OP.INCRQ]: 20,
  [OP.DECRQ]: 20,
  [OP.TOUCH]: 4,
  [OP.GAT]: 4,
  [OP.GATQ]: 4,
  [OP.GATK]: 4,
  [OP.GATKQ]: 4,
  [OP.VERBOSITY]: 4,
};
/** Opcodes that carry no key. */
const NO_KEY = new Set<number>([
  OP.NOOP,
  OP.VERSION,
  OP.QUIT,
  OP.QUITQ,
  OP.FLUSH,
  OP.FLUSHQ,
  OP.STAT,
  OP.SASL_LIST,
]);
/** Opcodes that carry a value. */
const VALUE_OPS = new Set<number>([
  OP.SET,
  OP.ADD,
  OP.REPLACE,
  OP.SETQ,
  OP.ADDQ,
  OP.REPLACEQ,
  OP.APPEND,
  OP.PREPEND,
  OP.APPENDQ,
  OP.PREPENDQ,
]);

Deno.test({
  name: "proxy binary: 5000 seeded random and truncated packets never take the proxy down",
  ignore: ignoreUnless("proxy binary fuzz", NEED),
  async fn() {
    const cluster = await startCluster({ servers: 2, backups: 1 });
    try {
      const rand = seeded(4242);
      const int = (n: number) => Math.floor(rand() * n);
      const bystander = await connect(cluster.proxy.port);
      equal((await one(bystander, set("fz:keep", "kept"))).status, 0);
      // No flush: the bystander's item must stay.
      const ops = Object.values(OP).filter((o) => o !== OP.FLUSH && o !== OP.FLUSHQ);
      let sent = 0;
      /** One connection's packets: mostly well-shaped, some broken, maybe a truncated tail. */
      const batch = (n: number): Uint8Array => {
        const parts: Uint8Array[] = [];
        for (let i = 0; i < n; i++, sent++) {
          let op = rand() < 0.9 ? ops[int(ops.length)] : int(256);
          if (op === OP.FLUSH || op === OP.FLUSHQ) op = OP.NOOP;
          // Well-shaped packets reach the backends; others have wrong extras, no key or a
          // value where none belongs (memcached's protocol errors: the connection closes).
          const shaped = rand() < 0.9;
          const key = shaped ? (NO_KEY.has(op) ? "" : `fz:${int(20)}`) : rand() < 0.5 ? "" : "fz:x";
          const extlen = shaped ? (EXTRAS[op] ?? 0) : [0, 4, 8, 20, int(30)][int(5)];
          const extras = new Uint8Array(extlen).map(() => rand() < 0.7 ? 0 : int(256));
          const value = shaped && !VALUE_OPS.has(op) ? "" : "v".repeat(int(40));
          let p = packet({
            op,
            key,
            extras,
            value,
            opaque: i,
            cas: rand() < 0.2 ? BigInt(int(9)) : 0n,
          });
          const r = rand();
          if (r < 0.05 || (i === n - 1 && r < 0.3)) p = p.subarray(0, int(p.length)); // truncated
          else if (r < 0.09) {
            p = p.slice();
            p[int(24)] = int(256); // a header byte changed (lengths, magic, opcode)
          }
          parts.push(p);
        }
        return cat(parts);
      };
      const fuzzOne = async () => {
        const c = await connect(cluster.proxy.port);
        await c.send(batch(10)).catch(() => {});
        // Read what comes (maybe nothing: a truncated packet waits), then drop the connection.
        await c.readIdle(20, 500).catch(() => new Uint8Array(0));
        await c.close();
      };
      for (let round = 0; sent < 5000; round++) {
        await Promise.all([fuzzOne(), fuzzOne(), fuzzOne(), fuzzOne()]);
        if (round % 10 === 0) {
          const r = await one(bystander, get("fz:keep"));
          equal(text(r.value), "kept", `bystander after ${sent} packets`);
        }
      }
      ok(!cluster.proxy.exited(), "the proxy is still running");
      const handled = Number((await proxyStats(cluster.proxy.port)).get("binary_requests"));
      // Unknown opcodes swallow more than their body and protocol errors close, as in memcached.
      ok(handled > 1000, `packets reached the router: ${handled} of ${sent}`);
      const r = await one(bystander, get("fz:keep"));
      equal(text(r.value), "kept");
      const fresh = await connect(cluster.proxy.port);
      equal(await getValue(fresh, "fz:keep"), "kept", "a new text connection works");
      await fresh.close();
      await bystander.close();
      const errors = cluster.proxy.outputLines().filter((l) => /internal error|Uncaught/.test(l));
      deepEqual(errors, [], "no internal errors logged");
    } finally {
      await cluster.stop();
    }
  },
});

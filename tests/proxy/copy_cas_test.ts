/**
 * A CAS token is one server's: a `gets` answered by the backup while the
 * primary is down hands out the backup's CAS, and once the primary is back
 * a `cas` with that token goes to the primary, whose counter is its own. A
 * token made stale by a later write must not store there because the
 * primary's item (put back by the cleaning) happens to carry the same
 * number: memcached answers EXISTS (meta EX, binary KEY_EEXISTS). Found by
 * tests/proxy/pipeline_model_test.ts ("cas with a token from before a write
 * stored", seeds 296976583 and 814814592): primaries hung or killed, their
 * counters behind the backups'.
 */

import { equal, eventually } from "../helpers/assert.ts";
import { connect, ignoreUnless, type TestConn } from "../helpers/mod.ts";
import { OP, packet, roundTrip, setExtras } from "../helpers/binary.ts";
import { getValue, markedDown, proxyStats, setValue, startPair, waitForState } from "./cluster.ts";

/** The CAS of `key`'s item on a connection (`mg k c`), -1 on a miss. */
async function casOf(c: TestConn, key: string): Promise<bigint> {
  const r = await c.request(`mg ${key} c v\r\n`, /(EN|VA [^\r]*\r\n[^\r]*)\r\n$/);
  const m = /^VA \d+ c(\d+)/.exec(r);
  return m ? BigInt(m[1]) : -1n;
}

/** The stale-token cas forms and how each reports EXISTS. */
const FORMS: [string, (c: TestConn, key: string, cas: bigint, port: number) => Promise<string>][] =
  [
    ["text", (c, k, cas) => c.request(`cas ${k} 0 0 1 ${cas}\r\nz\r\n`)],
    ["meta", (c, k, cas) => c.request(`ms ${k} 1 C${cas}\r\nz\r\n`)],
    ["binary", async (_c, k, cas, port) => {
      // A connection speaks the protocol of its first byte: a new one.
      const b = await connect(port);
      try {
        const p = packet({ op: OP.SET, key: k, value: "z", extras: setExtras(0, 0), cas });
        const [r] = await roundTrip(b, p);
        return r.status === 2 ? "EXISTS" : `status ${r.status}`;
      } finally {
        await b.close();
      }
    }],
  ];

const WANT: Record<string, string> = { text: "EXISTS\r\n", meta: "EX\r\n", binary: "EXISTS" };

for (const [form, cas] of FORMS) {
  const NAME =
    `proxy: a ${form} cas with a stale token from the backup does not store on the primary`;
  Deno.test({
    name: NAME,
    ignore: ignoreUnless(NAME, ["memcached"]),
    async fn() {
      const pair = await startPair({ relay: "primary" });
      const { primary, backup, proxy, toPrimary } = pair;
      const c = await connect(proxy.port);
      const onPrimary = await connect(primary.port), onBackup = await connect(backup.port);
      try {
        // The backup's counter ahead of the primary's.
        for (let i = 0; i < 20; i++) equal(await setValue(onBackup, `pad${i}`, "x"), "STORED\r\n");
        equal(await setValue(c, "k", "a"), "STORED\r\n");
        await eventually(async () => (await casOf(onBackup, "k")) > 0n, true, "the copy");
        toPrimary.refuse(true);
        toPrimary.drop();
        await markedDown(proxy.port, toPrimary.port, "k");
        // The primary is down: the token is the backup's.
        const r = await c.request("gets k\r\n", /END\r\n$/);
        const token = BigInt(/^VALUE k 0 1 (\d+)\r\na\r\nEND\r\n$/.exec(r)?.[1] ?? "-1");
        equal(token, await casOf(onBackup, "k"), `gets answered by the backup: ${r}`);
        // With the primary still down, the token works where it came from, and is stale then.
        equal(await c.request(`cas k 0 0 1 ${token}\r\nb\r\n`), "STORED\r\n");
        // The primary's next store (the cleaning's put-back of k) gets the token's number.
        for (;;) {
          const n = /c(\d+)/.exec(await onPrimary.request("ms pump 1 c\r\nx\r\n"))?.[1];
          if (BigInt(n ?? "0") >= token - 1n) break;
        }
        toPrimary.refuse(false);
        await waitForState(proxy.port, "server", toPrimary.port, "up", 20_000);
        const dirty = `server:127.0.0.1:${toPrimary.port}:dirty_keys`;
        await eventually(async () => (await proxyStats(proxy.port)).get(dirty), "0", "cleaned");
        await eventually(() => casOf(onPrimary, "k"), token, "k put back with the token's number");
        equal(await cas(c, "k", token, proxy.port), WANT[form], `${form} cas with the stale token`);
        equal((await c.request("get k\r\n", /END\r\n$/)).includes("\r\nb\r\n"), true);
      } finally {
        for (const x of [c, onPrimary, onBackup]) await x.close();
        await pair.stop();
      }
    },
  });
}

const REVERSE = "proxy: a cas with a stale token from the primary does not store on the backup";
Deno.test({
  name: REVERSE,
  ignore: ignoreUnless(REVERSE, ["memcached"]),
  async fn() {
    const pair = await startPair({ relay: "primary" });
    const { primary, backup, proxy, toPrimary } = pair;
    const c = await connect(proxy.port);
    const onPrimary = await connect(primary.port), onBackup = await connect(backup.port);
    try {
      // The primary's counter ahead of the backup's.
      for (let i = 0; i < 20; i++) equal(await setValue(onPrimary, `pad${i}`, "x"), "STORED\r\n");
      equal(await setValue(c, "k", "a"), "STORED\r\n");
      const r = await c.request("gets k\r\n", /END\r\n$/);
      const token = BigInt(/^VALUE k 0 1 (\d+)\r\na\r\nEND\r\n$/.exec(r)?.[1] ?? "-1");
      equal(token, await casOf(onPrimary, "k"), `gets answered by the primary: ${r}`);
      await eventually(async () => (await casOf(onBackup, "k")) > 0n, true, "the copy");
      // The backup's next store (the copy of the write below) gets the token's number.
      for (;;) {
        const n = /c(\d+)/.exec(await onBackup.request("ms pump 1 c\r\nx\r\n"))?.[1];
        if (BigInt(n ?? "0") >= token - 1n) break;
      }
      equal(await setValue(c, "k", "b"), "STORED\r\n");
      await eventually(() => casOf(onBackup, "k"), token, "the copy has the token's number");
      toPrimary.refuse(true);
      toPrimary.drop();
      await markedDown(proxy.port, toPrimary.port, "k");
      equal(await c.request(`cas k 0 0 1 ${token}\r\nz\r\n`), "EXISTS\r\n");
      equal((await c.request("get k\r\n", /END\r\n$/)).includes("\r\nb\r\n"), true);
    } finally {
      for (const x of [c, onPrimary, onBackup]) await x.close();
      await pair.stop();
    }
  },
});

const REISSUED = "proxy: a token the primary hands out again after a backup's works";
Deno.test({
  name: REISSUED,
  ignore: ignoreUnless(REISSUED, ["memcached"]),
  async fn() {
    const pair = await startPair({ relay: "primary" });
    const { primary, backup, proxy, toPrimary } = pair;
    const c = await connect(proxy.port);
    const onPrimary = await connect(primary.port), onBackup = await connect(backup.port);
    try {
      for (let i = 0; i < 20; i++) equal(await setValue(onBackup, `pad${i}`, "x"), "STORED\r\n");
      equal(await setValue(c, "k", "a"), "STORED\r\n");
      await eventually(async () => (await casOf(onBackup, "k")) > 0n, true, "the copy");
      toPrimary.refuse(true);
      toPrimary.drop();
      await markedDown(proxy.port, toPrimary.port, "k");
      const r = await c.request("gets k\r\n", /END\r\n$/);
      const token = BigInt(/^VALUE k 0 1 (\d+)\r\na\r\nEND\r\n$/.exec(r)?.[1] ?? "-1");
      equal(token, await casOf(onBackup, "k"), `gets answered by the backup: ${r}`);
      toPrimary.refuse(false);
      await waitForState(proxy.port, "server", toPrimary.port, "up", 20_000);
      const dirty = `server:127.0.0.1:${toPrimary.port}:dirty_keys`;
      await eventually(async () => (await proxyStats(proxy.port)).get(dirty), "0", "cleaned");
      // The primary's next store (the set below) gets the backup's token's number.
      for (;;) {
        const n = /c(\d+)/.exec(await onPrimary.request("ms pump 1 c\r\nx\r\n"))?.[1];
        if (BigInt(n ?? "0") >= token - 1n) break;
      }
      equal(await setValue(c, "k", "b"), "STORED\r\n");
      const again = await c.request("gets k\r\n", /END\r\n$/);
      equal(again, `VALUE k 0 1 ${token}\r\nb\r\nEND\r\n`, "the primary's item has the number");
      equal(await c.request(`cas k 0 0 1 ${token}\r\nz\r\n`), "STORED\r\n", "its token works");
    } finally {
      for (const x of [c, onPrimary, onBackup]) await x.close();
      await pair.stop();
    }
  },
});

const LOST = "proxy: a cas of an item its primary lost (restarted empty) is EXISTS, not NOT_FOUND";
Deno.test({
  name: LOST,
  ignore: ignoreUnless(LOST, ["memcached"]),
  async fn() {
    const pair = await startPair({ direct: true });
    const { primary, backup, direct, proxy } = pair;
    const c = await connect(proxy.port), d = await connect(direct.port);
    const onPrimary = await connect(primary.port);
    try {
      for (const [form, cas] of FORMS) {
        const key = `lost_${form}`, want = WANT[form];
        equal(await setValue(c, key, "a"), "STORED\r\n");
        equal(await setValue(d, key, "a"), "STORED\r\n");
        const token = await casOf(onPrimary, key), tokenD = await casOf(d, key);
        // A write since: the token is stale, and memcached, holding the item, answers EXISTS.
        equal(await setValue(c, key, "b"), "STORED\r\n");
        equal(await setValue(d, key, "b"), "STORED\r\n");
        await eventually(
          async () => {
            const b = await connect(backup.port);
            try {
              return (await b.request(`mg ${key} v\r\n`, /(EN|VA[^\r]*\r\n[^\r]*)\r\n$/)).includes(
                "b",
              );
            } finally {
              await b.close();
            }
          },
          true,
          "the copy of b",
        );
        equal(await onPrimary.request(`delete ${key}`), "DELETED\r\n");
        equal(await cas(d, key, tokenD, direct.port), want, `${form}: memcached`);
        equal(await cas(c, key, token, proxy.port), want, `${form}: proxy`);
        equal(await getValue(c, key), "b", `${form}: the value`);
      }
    } finally {
      for (const x of [c, d, onPrimary]) await x.close();
      await pair.stop();
    }
  },
});

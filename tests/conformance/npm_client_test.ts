/**
 * A real npm memcached client (memcache-client, text protocol, pinned in
 * deno.lock) drives `memrep serve`: set/get/gets/cas/incr/decr/delete/touch.
 */

import { MemcacheClient } from "npm:memcache-client@1.0.5";
import { Buffer } from "node:buffer";
import { deepEqual, equal, ok, rejects } from "../helpers/assert.ts";
import { startMemrep } from "../helpers/process.ts";

const NAME = "serve works with the npm memcache-client (text protocol)";

Deno.test({
  name: NAME,
  // The client's sockets close asynchronously after shutdown().
  sanitizeOps: false,
  sanitizeResources: false,
  async fn(t) {
    const server = await startMemrep(["serve", "-m", "64", "-U", "0"]);
    const client = new MemcacheClient({ server: `127.0.0.1:${server.port}`, cmdTimeout: 3000 });
    try {
      await t.step("set and get a string", async () => {
        deepEqual(await client.set("npm:str", "hello"), ["STORED"]);
        const r = await client.get<string>("npm:str");
        equal(r.value, "hello");
      });
      await t.step("get of a missing key is undefined", async () => {
        equal(await client.get("npm:missing"), undefined);
      });
      await t.step("binary Buffer value round-trips", async () => {
        const bytes = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
        await client.set("npm:bin", bytes);
        const r = await client.get<Buffer>("npm:bin");
        ok(Buffer.isBuffer(r.value), "value comes back as a Buffer");
        deepEqual([...r.value], [...bytes]);
      });
      await t.step("JSON objects round-trip through client flags", async () => {
        await client.set("npm:obj", { a: 1, b: [1, 2] });
        deepEqual((await client.get<unknown>("npm:obj")).value, { a: 1, b: [1, 2] });
      });
      await t.step("multi-get returns every hit", async () => {
        await client.set("npm:m1", "one");
        await client.set("npm:m2", "two");
        // A multi-key get answers a map keyed by key.
        const r = await client.get<string>(["npm:m1", "npm:m2", "npm:m3"]) as unknown as Record<
          string,
          { value: string } | undefined
        >;
        equal(r["npm:m1"]?.value, "one");
        equal(r["npm:m2"]?.value, "two");
        equal(r["npm:m3"], undefined);
      });
      await t.step("gets then cas succeeds once, a stale cas fails", async () => {
        await client.set("npm:cas", "v1");
        const g = await client.gets<string>("npm:cas");
        ok(g.casUniq, "gets returns a cas value");
        deepEqual(await client.cas("npm:cas", "v2", { casUniq: g.casUniq }), ["STORED"]);
        await rejects(client.cas("npm:cas", "v3", { casUniq: g.casUniq }), /EXISTS/);
        equal((await client.get<string>("npm:cas")).value, "v2");
      });
      await t.step("add, replace, append, prepend", async () => {
        deepEqual(await client.add("npm:arp", "b"), ["STORED"]);
        await rejects(client.add("npm:arp", "x"), /NOT_STORED/);
        deepEqual(await client.append("npm:arp", "c"), ["STORED"]);
        deepEqual(await client.prepend("npm:arp", "a"), ["STORED"]);
        equal((await client.get<string>("npm:arp")).value, "abc");
        deepEqual(await client.replace("npm:arp", "z"), ["STORED"]);
        equal((await client.get<string>("npm:arp")).value, "z");
      });
      await t.step("incr and decr", async () => {
        await client.set("npm:n", "10");
        equal(await client.incr("npm:n", 5), "15");
        equal(await client.decr("npm:n", 20), "0");
        await rejects(client.incr("npm:nokey", 1), /NOT_FOUND/);
      });
      await t.step("touch and delete", async () => {
        await client.set("npm:d", "x");
        deepEqual(await client.touch("npm:d", 100), ["TOUCHED"]);
        deepEqual(await client.delete("npm:d"), ["DELETED"]);
        equal(await client.get("npm:d"), undefined);
        await rejects(client.delete("npm:d"), /NOT_FOUND/);
      });
      await t.step("version", async () => {
        const v = await client.version();
        equal(v[0], "VERSION");
        ok(v[1]?.length, "a version string follows");
      });
    } finally {
      client.shutdown();
      await server.stop();
    }
  },
});

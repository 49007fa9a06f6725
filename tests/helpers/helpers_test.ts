/**
 * The test helpers themselves: processes start and stop, the raw client
 * frames replies, the relay forwards, pauses, black-holes and drops.
 */

import { equal, ok, rejects } from "./assert.ts";
import { connect, ReadError, retrievalEnd } from "./conn.ts";
import { freePort } from "./ports.ts";
import { ignoreUnless, startMemcached, startNutcracker } from "./process.ts";
import { startRelay } from "./relay.ts";

Deno.test("freePort returns a port that can be bound", () => {
  const p = freePort();
  const l = Deno.listen({ hostname: "127.0.0.1", port: p });
  equal((l.addr as Deno.NetAddr).port, p);
  l.close();
});

const MC = "startMemcached serves requests and stop() is idempotent";
Deno.test({
  name: MC,
  ignore: ignoreUnless(MC, ["memcached"]),
  async fn() {
    const mc = await startMemcached(["-vv"]);
    try {
      const c = await connect(mc.port);
      equal(await c.request("set k 0 0 5\r\nEND\r\n\r\n"), "STORED\r\n");
      // retrievalEnd frames by length, so a value of "END\r\n" does not end the reply early.
      equal(await c.request("get k", retrievalEnd), "VALUE k 0 5\r\nEND\r\n\r\nEND\r\n");
      await c.sendSlowly("version\r\n", 2);
      ok((await c.readLine()).startsWith("VERSION "));
      await rejects(c.readUntil("never", 100), ReadError);
      await c.send("quit\r\n");
      ok(await c.waitClosed(2000), "quit closes");
      await c.close();
      await mc.waitForLog(/quit/, 2000); // -vv logs commands to stderr (throws otherwise)
    } finally {
      await mc.stop();
      await mc.stop();
    }
    ok(mc.exited());
  },
});

const RELAY = "relay forwards, pauses, black-holes, refuses and drops";
Deno.test({
  name: RELAY,
  ignore: ignoreUnless(RELAY, ["memcached"]),
  async fn() {
    const mc = await startMemcached();
    const relay = startRelay(mc.port);
    try {
      const c = await connect(relay.port);
      equal(await c.request("version"), await direct(mc.port), "bytes pass unchanged");
      equal(relay.connections(), 1);

      relay.pause();
      await c.send("mn\r\n");
      equal((await c.readIdle(150, 300)).length, 0, "nothing passes while paused");
      relay.resume();
      equal(await c.readLine(), "MN", "held bytes are delivered on resume");

      relay.blackhole(true);
      await c.send("mn\r\n");
      equal((await c.readIdle(150, 300)).length, 0, "black-holed bytes vanish");
      relay.blackhole(false);
      equal(await c.request("mn"), "MN\r\n");

      relay.drop();
      ok(await c.waitClosed(1000), "drop closes client connections");
      await c.close();

      relay.refuse(true);
      const r = await connect(relay.port);
      ok(await r.waitClosed(1000), "refused connections are closed at once");
      await r.close();
      relay.refuse(false);

      relay.setLatency(50);
      const d = await connect(relay.port);
      const t0 = Date.now();
      equal(await d.request("mn"), "MN\r\n");
      ok(Date.now() - t0 >= 90, "latency applies in both directions");
      await d.close();
      ok(relay.accepted() >= 3);
    } finally {
      await relay.close();
      await mc.stop();
    }
  },
});

async function direct(port: number): Promise<string> {
  const c = await connect(port);
  try {
    return await c.request("version");
  } finally {
    await c.close();
  }
}

const NC = "startNutcracker proxies to memcached";
Deno.test({
  name: NC,
  ignore: ignoreUnless(NC, ["memcached", "nutcracker"]),
  async fn() {
    const mc = await startMemcached();
    const nc = await startNutcracker({ servers: [`127.0.0.1:${mc.port}`] });
    try {
      const c = await connect(nc.port);
      equal(await c.request("set k 0 0 1\r\nx"), "STORED\r\n");
      await c.close();
      const m = await connect(mc.port);
      equal(await m.request("get k", "END\r\n"), "VALUE k 0 1\r\nx\r\nEND\r\n");
      await m.close();
    } finally {
      await nc.stop();
      await mc.stop();
    }
  },
});

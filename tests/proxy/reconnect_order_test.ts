/**
 * Requests that wait for a backend's (re)connect are sent in the order they
 * came, before any request that arrives once the connection is up: a client's
 * `set k old` queued on the connect must not land after its later `set k new`
 * (a lost write), nor a later `get` overtake the set it follows (a stale read).
 *
 * The window is between the connection's adoption and the connect promise's
 * reactions (where the waiting requests are sent): code already queued as a
 * microtask, e.g. another client's read completing in the same event-loop
 * turn, runs in it. The test puts a request exactly there.
 */

import { equal, ok } from "../helpers/assert.ts";
import { ignoreUnless, startMemcached } from "../helpers/mod.ts";
import { Client } from "../../lib/client/mod.ts";
import { Backend } from "../../lib/proxy/mod.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();

Deno.test({
  name: "requests queued on a backend's connect go before later ones",
  ignore: ignoreUnless("proxy reconnect order", ["memcached"]),
  async fn() {
    const mc = await startMemcached();
    const real = Client.connect;
    const patched = Client as { connect: typeof Client.connect };
    const check = await real("127.0.0.1", mc.port);
    try {
      // Each round: a fresh backend's first connect (a reconnect takes the same path).
      for (let round = 0; round < 3; round++) {
        const b = new Backend("127.0.0.1", mc.port, "server", round, {
          timeoutMs: 2000,
          retryMs: 1000,
          failureLimit: 2,
        });
        try {
          // The connect finishes when the test says so (a real connection, handed over late).
          let release!: (c: Client) => void;
          patched.connect = () => new Promise<Client>((r) => release = r);
          const sent: Promise<boolean>[] = [];
          const first = b.acquire();
          ok(first instanceof Promise, "no connection yet: acquire() gives the connect");
          first.then((c) => sent.push(c.set("k", enc.encode(`old${round}`))));
          const conn = await real("127.0.0.1", mc.port);
          patched.connect = real;
          release(conn);
          // Queued right behind the connect's continuation: runs before the promise's reactions.
          queueMicrotask(() => {
            const c = b.acquire();
            ok(c !== null, "the backend is up");
            const send = (cl: Client) => sent.push(cl.set("k", enc.encode(`new${round}`)));
            if (c instanceof Client) send(c);
            else c.then(send);
          });
          while (sent.length < 2) await new Promise((r) => setTimeout(r, 1));
          equal((await Promise.all(sent)).join(), "true,true");
          const got = await check.getOne("k");
          equal(
            got === undefined ? "(miss)" : dec.decode(got.value),
            `new${round}`,
            `round ${round}`,
          );
        } finally {
          b.close();
        }
      }
    } finally {
      patched.connect = real;
      check.close();
      await mc.stop();
    }
  },
});

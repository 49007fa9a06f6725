/**
 * Replication sees binary writes exactly as text ones: each mutation
 * travels as resulting state, so a binary set, append, incr with an initial
 * value, touch, delete and flush on one node are on the other.
 */

import { deepEqual as assertEquals, equal } from "../helpers/assert.ts";
import {
  arithExtras,
  OP,
  packet,
  roundTrip,
  setExtras,
  text,
  u32Extras,
} from "../helpers/binary.ts";
import { concatBytes, connect, eventually } from "../helpers/mod.ts";
import { sameContents, settled, startPair } from "./pair.ts";

Deno.test("replication: binary writes on node A are on node B, incr with an initial value as its result", async () => {
  const { a, b } = await startPair();
  try {
    const ca = await connect(a.port);
    const cb = await connect(b.port);
    const n = 300;
    const sets = concatBytes(...Array.from(
      { length: n },
      (_, i) =>
        packet({ op: OP.SETQ, key: `bk${i}`, value: `value-${i}`, extras: setExtras(i, 0) }),
    ));
    assertEquals(await roundTrip(ca, sets), []);
    // incr with initial value creates on A; B must hold the result, not re-run it.
    const created = await roundTrip(
      ca,
      packet({ op: OP.INCR, key: "ctr", extras: arithExtras(1n, 40n, 0) }),
    );
    equal(new DataView(created[0].value.buffer).getBigUint64(0), 40n);
    await roundTrip(ca, packet({ op: OP.INCR, key: "ctr", extras: arithExtras(2n, 0n, 0) }));
    await roundTrip(ca, packet({ op: OP.APPEND, key: "bk0", value: "+tail" }));
    await roundTrip(ca, packet({ op: OP.DELETE, key: "bk1" }));
    await roundTrip(ca, packet({ op: OP.TOUCH, key: "bk2", extras: u32Extras(1000) }));
    await settled(a, b);
    const got = await roundTrip(
      cb,
      concatBytes(
        ...Array.from({ length: n }, (_, i) => packet({ op: OP.GETKQ, key: `bk${i}` })),
        packet({
          op: OP.GET,
          key: "ctr",
        }),
      ),
    );
    const ctr = got.pop()!;
    equal(text(ctr.value), "42");
    const byKey = new Map(got.map((r) => [text(r.key), text(r.value)]));
    let wrong = 0;
    for (let i = 0; i < n; i++) {
      const want = i === 0 ? "value-0+tail" : i === 1 ? undefined : `value-${i}`;
      if (byKey.get(`bk${i}`) !== want) wrong++;
    }
    equal(wrong, 0, "items differing on B");
    // And back: a binary incr on B reaches A.
    await roundTrip(cb, packet({ op: OP.INCRQ, key: "ctr", extras: arithExtras(8n, 0n, 0) }));
    await eventually(
      async () => text((await roundTrip(ca, packet({ op: OP.GET, key: "ctr" })))[0].value),
      "50",
      "binary incr on B reaches A",
    );
    await settled(a, b);
    await sameContents(a, b);
    // flush on B empties A.
    await roundTrip(cb, packet({ op: OP.FLUSH }));
    await eventually(
      async () => (await roundTrip(ca, packet({ op: OP.GET, key: "bk5" })))[0].status,
      1,
      "binary flush on B empties A",
    );
    await ca.close();
    await cb.close();
  } finally {
    await Promise.all([a.proc.stop(), b.proc.stop()]);
  }
});

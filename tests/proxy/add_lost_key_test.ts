/**
 * An add of a key that only a backup still holds (its primary restarted
 * empty, or lost it behind the proxy's back) must answer as memcached with
 * the key present: NOT_STORED (text), NS (meta), KEY_EEXISTS (binary); the
 * value reads return stays the old one and the primary gets it back. An add
 * of a key the backup lost but the primary holds answers NOT_STORED too and
 * must not leave the add's value on the backup. Each reply is compared with
 * a memcached holding the key. Found by tests/proxy/pipeline_model_test.ts.
 */

import { equal, eventually } from "../helpers/assert.ts";
import { connect, ignoreUnless } from "../helpers/mod.ts";
import { OP, roundTrip } from "../helpers/binary.ts";
import { set } from "./binary_cluster.ts";
import { directGet, getValue, setValue, startPair } from "./cluster.ts";

/** The add forms, each with the reply memcached gives once the key exists. */
const ADDS: [string, (key: string) => string][] = [
  ["add", (k) => `add ${k} 5 0 3\r\nnew\r\n`],
  ["add noreply", (k) => `add ${k} 5 0 3 noreply\r\nnew\r\nmn\r\n`],
  ["ms ME", (k) => `ms ${k} 3 ME F5 T0 Oab k c\r\nnew\r\n`],
  ["ms ME q", (k) => `ms ${k} 3 ME q\r\nnew\r\nmn\r\n`],
];

const NAME = "proxy: an add of a key only a backup holds, or only the primary, is NOT_STORED";
Deno.test({
  name: NAME,
  ignore: ignoreUnless(NAME, ["memcached"]),
  async fn() {
    const pair = await startPair({ direct: true });
    const { primary, backup, direct, proxy } = pair;
    const c = await connect(proxy.port), d = await connect(direct.port);
    const onPrimary = await connect(primary.port), onBackup = await connect(backup.port);
    const end = /(STORED|NOT_STORED|MN|HD[^\r]*|NS[^\r]*)\r\n$/;
    try {
      for (const [name, add] of ADDS) {
        for (const lostOn of [onPrimary, onBackup]) {
          const where = lostOn === onPrimary ? "primary" : "backup";
          const key = `k_${name.replaceAll(" ", "_")}_${where}`;
          equal(await setValue(c, key, "old"), "STORED\r\n");
          equal(await setValue(d, key, "old"), "STORED\r\n");
          // The backup's copy is sent once the primary answered: in before it is deleted there.
          await eventually(() => directGet(backup.port, key), "old", `${name}: the copy`);
          equal(await lostOn.request(`delete ${key}`), "DELETED\r\n");
          const want = await d.request(add(key), end);
          equal(await c.request(add(key), end), want, `${name}, lost on the ${where}`);
          equal(await getValue(c, key), "old", `${name}, lost on the ${where}: the value`);
          // The primary gets the item back; the backup never keeps the add's value.
          await eventually(() => directGet(primary.port, key), "old", `${name}: primary`);
          const onB = await directGet(backup.port, key);
          equal(onB === "old" || onB === undefined, true, `${name}: backup has ${onB}`);
        }
      }
      // Neither holds the key: the add is stored on both.
      equal(await c.request("add fresh 0 0 1\r\nv\r\n"), "STORED\r\n");
      await eventually(() => directGet(backup.port, "fresh"), "v");
      equal(await directGet(primary.port, "fresh"), "v");
      // Binary add: KEY_EEXISTS (status 2) when only the backup holds the key.
      equal(await setValue(c, "bin", "old"), "STORED\r\n");
      equal(await onPrimary.request("delete bin"), "DELETED\r\n");
      const b = await connect(proxy.port);
      try {
        const [r] = await roundTrip(b, set("bin", "new", 7, OP.ADD));
        equal(r.status, 2, "binary add of a key the backup holds");
      } finally {
        await b.close();
      }
      equal(await getValue(c, "bin"), "old");
    } finally {
      for (const x of [c, d, onPrimary, onBackup]) await x.close();
      await pair.stop();
    }
  },
});

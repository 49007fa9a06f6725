/**
 * A SIGHUP reload that changes a pool's `timeout:` keeps what the proxy
 * knows of its servers: a key the primary is dirty for (its write went to
 * the backup, the primary kept the older item) stays dirty, or reads return
 * the older item from the primary (the reload made new backends, which
 * started clean).
 */

import { equal } from "../helpers/assert.ts";
import { connect, ignoreUnless, startMemcached, startRelay } from "../helpers/mod.ts";
import { fill, startConfigProxy } from "./nc_config.ts";
import { directGet, getValue, proxyStats, setValue, sleep } from "./cluster.ts";

function yaml(primaryPort: number, backupPort: number, timeout: number): string {
  return [
    "alpha:",
    "  listen: 127.0.0.1:{port}",
    "  distribution: ketama",
    `  timeout: ${timeout}`,
    "  servers:",
    `   - 127.0.0.1:${primaryPort}:1`,
    "  backups:",
    `   - 127.0.0.1:${backupPort}:1`,
    "",
  ].join("\n");
}

const NAME = "proxy -c: a reload that changes the timeout keeps a primary's dirty keys";
Deno.test({
  name: NAME,
  ignore: ignoreUnless(NAME, ["memcached"]),
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const primary = await startMemcached(), backup = await startMemcached();
    const relay = startRelay(primary.port);
    const mr = await startConfigProxy(yaml(relay.port, backup.port, 500));
    const c = await connect(mr.port);
    try {
      equal(await setValue(c, "k", "a"), "STORED\r\n");
      // The primary hangs: the set times out there and goes to the backup; its bytes are dropped
      // with the link, so the primary keeps "a" and is dirty for the key (for a second at least).
      relay.pause();
      equal(await setValue(c, "k", "b"), "STORED\r\n");
      relay.drop();
      relay.resume();
      equal(await directGet(primary.port, "k"), "a", "the primary kept the older item");
      const dirty = `server:127.0.0.1:${relay.port}:dirty_keys`;
      const before = (await proxyStats(mr.port)).get(dirty);
      const from = mr.proc.outputLines().length;
      await Deno.writeTextFile(mr.file, fill(yaml(relay.port, backup.port, 600), mr.port));
      mr.proc.kill("SIGHUP");
      await mr.proc.waitForLog(/reloaded/, 10_000, from);
      equal(before, "1", "dirty before the reload");
      for (let i = 0; i < 20; i++) {
        equal(await getValue(c, "k"), "b", `read ${i} after the reload`);
        await sleep(50);
      }
    } finally {
      await c.close();
      await mr.proc.stop();
      await relay.close();
      await primary.stop();
      await backup.stop();
    }
  },
});

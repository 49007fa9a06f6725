/** pymemcache's own integration suite against `memrep serve`. */

import { pymemcacheAvailable, runPymemcacheSuite } from "../helpers/pymemcache.ts";
import { startMemrep } from "../helpers/process.ts";

const NAME = "serve passes pymemcache's integration tests";

Deno.test({
  name: NAME,
  ignore: !pymemcacheAvailable(NAME),
  async fn() {
    const server = await startMemrep(["serve", "-m", "64", "-U", "0"]);
    try {
      await runPymemcacheSuite(server.port);
    } finally {
      await server.stop();
    }
  },
});

/**
 * `serve -e` warm restart: N items (default 1M) of 100-byte values, then
 * SIGUSR1 (save, exit) and a new start with the same -e (load, listen).
 * Reports the save and load times the server logs (-v) and the wall time
 * from the signal to the exit and from the spawn to the answering port.
 *
 * Also the `restart` section of bench/mod.ts (`deno task bench restart`).
 * @module
 */

import { startMemrep } from "../tests/helpers/process.ts";
import { type BenchContext, fmt, loadItems, type Result, type Section, stats } from "./harness.ts";

/** The `restart` section: save + restore of ctx.items items; goal: seconds for 1M. */
export const warmRestart: Section = {
  name: "restart",
  title: "serve -e: save on SIGUSR1 and restore on start, 100 B values (goal: 1M items in seconds)",
  async run(ctx: BenchContext): Promise<Result[] | string> {
    const dir = await Deno.makeTempDir({ prefix: "memrep-bench-restart-" });
    const file = `${dir}/cache`;
    const args = ["serve", "-m", "1024", "-v", "-e", file];
    try {
      let server = await startMemrep(args);
      ctx.log(`restart: loading ${ctx.items} items`);
      const failed = await loadItems(server.port, ctx.items);
      if (failed) return `${failed} sets were not stored`;
      const t0 = performance.now();
      server.kill("SIGUSR1");
      await server.status;
      const saveWall = (performance.now() - t0) / 1000;
      await server.stop();
      const saved = server.stderrLines().find((l) => l.startsWith("[restart] saved")) ?? "";
      const t1 = performance.now();
      server = await startMemrep(args);
      const loadWall = (performance.now() - t1) / 1000;
      const items = Number((await stats(server.port)).get("curr_items"));
      await server.stop();
      const loaded = server.stderrLines().find((l) => l.startsWith("[restart] loaded")) ?? "";
      if (items !== ctx.items) return `restored ${items} of ${ctx.items} items`;
      const ms = (line: string) => Number(/in (\d+) ms/.exec(line)?.[1] ?? NaN) / 1000;
      return [
        {
          name: "restart save seconds",
          value: ms(saved),
          detail: `${saved}; signal to exit ${saveWall.toFixed(2)} s`,
        },
        {
          name: "restart load seconds",
          value: ms(loaded),
          detail: `${loaded}; spawn to answering port ${loadWall.toFixed(2)} s, ${
            fmt(items / loadWall)
          } items/s`,
        },
      ];
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
};

/**
 * The copier's memory while `memrep replicate` moves large items: sampled
 * from /proc while it runs, it must stay at a few batches whatever the data
 * set's size.
 */

import { equal, ok } from "../helpers/assert.ts";
import { startRelay } from "../helpers/relay.ts";
import { ignoreUnless, startMemcached } from "../helpers/process.ts";
import { Client } from "../../lib/client/mod.ts";
import { sameAs } from "./contents.ts";
import { addr, copy, fill, freeze, midway } from "./run.ts";

const ignore = ignoreUnless("memrep replicate memory tests", ["memcached"]);

Deno.test({
  name:
    "300 items of 1 MB: copy (the target stopped meanwhile), dump and restore hold a few batches, not the data set",
  ignore,
  async fn() {
    const src = await startMemcached(["-I", "2m", "-m", "512"]);
    const dst = await startMemcached(["-I", "2m", "-m", "512"]);
    const relay = startRelay(dst.port);
    relay.setLatency(1);
    try {
      await fill(src.port, 300, 1 << 20);
      const r = await copy(
        ["--from", addr(src.port), "--to", addr(relay.port)],
        async () => {
          await midway(dst.port, 20);
          await freeze(dst, 2000);
        },
      );
      equal(r.code, 0, r.out);
      equal(r.summary.copied, 300, r.out);
      // 300 MB copied: the copier's own memory stays near its idle ~50 MB plus batches and
      // garbage (~180 MB measured); it reached 1.3 GB when a batch was 1,000 items.
      ok(r.peakKb < 400_000, `peak RSS ${r.peakKb} kB`);
      console.log(`peak RSS copying 300 MB: ${Math.round(r.peakKb / 1024)} MB`);
      equal(await sameAs(src.port, dst.port, 4), 300); // SIGSTOP: see flow_test's `stops`
      // A dump and its restore (into a flushed target) hold a few batches, too.
      const file = await Deno.makeTempFile({ suffix: ".mrd" });
      try {
        const d = await copy(["--from", addr(src.port), "--dump", file], () => Promise.resolve());
        equal(d.code, 0, d.out);
        ok(d.peakKb < 400_000, `dump: peak RSS ${d.peakKb} kB`);
        const c = await Client.connect("127.0.0.1", dst.port);
        await c.flushAll();
        c.close();
        const back = await copy(
          ["--restore", file, "--to", addr(dst.port)],
          () => Promise.resolve(),
        );
        equal(back.code, 0, back.out);
        equal(back.summary.copied, 300, back.out);
        ok(back.peakKb < 400_000, `restore: peak RSS ${back.peakKb} kB`);
        console.log(
          `peak RSS dumping: ${Math.round(d.peakKb / 1024)} MB, restoring: ${
            Math.round(back.peakKb / 1024)
          } MB`,
        );
        equal(await sameAs(src.port, dst.port), 300);
      } finally {
        await Deno.remove(file);
      }
    } finally {
      await relay.close();
      await src.stop();
      await dst.stop();
    }
  },
});

/**
 * `memrep replicate` against servers that stall: a target or source whose
 * link holds its bytes, or that is stopped (SIGSTOP), for seconds mid-copy,
 * and a target that never answers.
 */

import { equal, ok } from "../helpers/assert.ts";
import { startRelay } from "../helpers/relay.ts";
import { ignoreUnless, startMemcached } from "../helpers/process.ts";
import { sameAs } from "./contents.ts";
import { addr, copy, fill, freeze, midway, withServers } from "./run.ts";

const ignore = ignoreUnless("memrep replicate flow control tests", ["memcached"]);

/**
 * How each stop is made, for how long, and how far the copy's remaining TTLs
 * may then be from the source's (under, over; 2 s either way is rounding, see
 * sameAs). Replies held on the way back from a target test the copier
 * alone: its next fetches must not count from before the stop (they were
 * 4 s short). Requests held on the way to a source are answered late, so the
 * copy may expire up to that much earlier, never later. Writes held on the
 * way to a target carry a relative TTL (memcached's only kind below 30 days),
 * so there the copy outlives the source by up to the delay. A stopped memcached
 * also stops its clock, which it advances on a timer: for a moment after
 * SIGCONT it reads and sets TTLs against the time before the stop.
 */
const stops = [
  { how: "holds its replies", side: "target", ms: 4000, slack: [2, 2], stop: "replies" },
  { how: "gets requests late", side: "source", ms: 2000, slack: [4, 2], stop: "requests" },
  { how: "gets writes late", side: "target", ms: 2000, slack: [2, 4], stop: "link" },
  { how: "is stopped (SIGSTOP)", side: "target", ms: 2000, slack: [4, 4], stop: "process" },
  { how: "is stopped (SIGSTOP)", side: "source", ms: 2000, slack: [4, 4], stop: "process" },
] as const;

{
  for (const { how, side, ms, slack, stop } of stops) {
    Deno.test({
      name: `a ${side} that ${how} for ${
        ms / 1000
      } s mid-copy: the copy waits, finishes, TTLs hold`,
      ignore,
      async fn() {
        await withServers(side, async ({ src, dst, relay }) => {
          relay.setLatency(1);
          const n = 10_000;
          await fill(src.port, n, 100);
          const from = side === "source" ? relay.port : src.port;
          const to = side === "target" ? relay.port : dst.port;
          const r = await copy(
            ["--from", addr(from), "--to", addr(to), "--batch", "20"],
            async () => {
              await midway(dst.port, 1000);
              if (stop === "process") await freeze(side === "target" ? dst : src, ms);
              else {
                if (stop === "link") relay.pause();
                else relay.stall(stop === "requests");
                await new Promise((r) => setTimeout(r, ms));
                relay.resume();
              }
            },
          );
          equal(r.code, 0, r.out);
          equal(r.summary.copied, n, r.out);
          equal(await sameAs(src.port, dst.port, slack), n);
        });
      },
    });
  }
}

Deno.test({
  name: "a target that never answers: the copy ends after --timeout, names it once, exit 1",
  ignore,
  async fn() {
    await withServers("target", async ({ src, dst, relay }) => {
      await fill(src.port, 5000, 100);
      const r = await copy(
        ["--from", addr(src.port), "--to", addr(relay.port), "--batch", "100", "--timeout", "1000"],
        async () => {
          await midway(dst.port, 1000);
          relay.pause();
        },
      );
      equal(r.code, 1, r.out);
      const lost = `lost target ${addr(relay.port)}: no reply within 1000 ms`;
      // It was printed twice: the failed batch's error was awaited again after the loop.
      equal(r.err.split(lost).length - 1, 1, r.err);
      ok(r.summary.copied >= 1000 && r.summary.copied < 5000, r.out);
      // The same when the batch that fails is the last (here the only) one: a relay
      // that lets the copier's version check through but drops its writes.
      const sink = startRelay(dst.port);
      try {
        sink.tamper((chunk, toTarget) => toTarget && chunk[0] === 0x6d ? new Uint8Array(0) : chunk // "ms ..."
        );
        const one = await copy(
          [
            "--from",
            addr(src.port),
            "--to",
            addr(sink.port),
            "--batch",
            "100000",
            "--timeout",
            "1000",
          ],
          () => Promise.resolve(),
        );
        equal(one.code, 1, one.out);
        const gone = `lost target ${addr(sink.port)}: no reply within 1000 ms`;
        equal(one.err.split(gone).length - 1, 1, one.err);
        equal(one.summary.copied, 0, one.out);
      } finally {
        await sink.close();
      }
    });
  },
});

Deno.test({
  name:
    "a dump whose source is lost mid-copy leaves the existing dump as it was; what it got is in <path>.partial",
  ignore,
  async fn() {
    const src = await startMemcached();
    const relay = startRelay(src.port);
    relay.setLatency(2);
    const dir = await Deno.makeTempDir({ prefix: "memrep-dump-" });
    try {
      await fill(src.port, 20_000, 100);
      const path = `${dir}/cache.mrd`;
      await Deno.writeTextFile(path, "an earlier dump");
      const r = await copy(
        ["--from", addr(relay.port), "--dump", path, "--batch", "50"],
        async () => {
          await new Promise((r) => setTimeout(r, 500));
          relay.refuse(true);
          relay.drop();
        },
      );
      equal(r.code, 1, r.out);
      equal(await Deno.readTextFile(path), "an earlier dump", "the old dump is untouched");
      const partial = await Deno.readFile(`${path}.partial`);
      equal(new TextDecoder().decode(partial.subarray(0, 4)), "MRD1", "the partial file is a dump");
      // A finished dump takes the place of the old one.
      relay.refuse(false);
      const done = await copy(["--from", addr(src.port), "--dump", path], () => Promise.resolve());
      equal(done.code, 0, done.out);
      equal(done.summary.copied, 20_000, done.out);
      equal(new TextDecoder().decode((await Deno.readFile(path)).subarray(0, 4)), "MRD1");
    } finally {
      await relay.close();
      await src.stop();
      await Deno.remove(dir, { recursive: true });
    }
  },
});

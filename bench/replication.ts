/**
 * Cost and behaviour of `serve --replicate`: memcaslap throughput of a
 * replicated node (a pair's, a 3-member group's) against a single serve
 * (same run, alternating), replication lag, full-copy rate, and how fast the
 * survivor takes over the replication port after kill -9 and after a hang.
 *
 * Lag is measured in runs of their own while memcaslap loads the writer,
 * three ways: the writer's own figures (from each change to the peer's
 * acknowledgement of having applied it: the one-way lag plus the way back),
 * the peer's (from the change's version clock to its apply: one way, to the
 * millisecond), and what a client sees (from its receipt of STORED for a
 * fresh key on the writer to its first `mg` hit on the peer, see probeLag,
 * beside that method's floor: the peer's own `mg` round trip, in a second
 * load, as its polling adds a busy client). The client's is measured again
 * with no load. With the loaded figures go the servers'
 * run-queue waits (time their threads were runnable but had no core), since
 * on a 2-core machine shared with memcaslap the tail is mostly that.
 * @module
 */

import { type ProcessHandle, startMemrep } from "../tests/helpers/process.ts";
import { freePort } from "../tests/helpers/ports.ts";
import { connect, type TestConn } from "../tests/helpers/conn.ts";
import {
  alternate,
  type BenchContext,
  fmt,
  loadItems,
  median,
  memcaslap,
  type Result,
  type Section,
  slapConfig,
  stats,
  unavailable,
} from "./harness.ts";

const FLAGS = ["-m", "1024", "-U", "0"];

/** A replicated pair on one replication port (A listens, B joins), both paired. */
async function startPair(extra: string[] = []): Promise<[ProcessHandle, ProcessHandle]> {
  const repl = String(freePort());
  const a = await startMemrep(["serve", "-v", ...FLAGS, "-x", "127.0.0.1", "-X", repl, ...extra]);
  try {
    await a.waitForLog(/^replication: listen$/, 10_000);
    const b = await startMemrep(["serve", "-v", ...FLAGS, "-x", "127.0.0.1", "-X", repl, ...extra]);
    await Promise.all([
      a.waitForLog(/^replication: start/, 10_000),
      b.waitForLog(/^replication: start/, 10_000),
    ]);
    return [a, b];
  } catch (e) {
    await a.stop();
    throw e;
  }
}

/**
 * A replica group of `n` members on loopback (`--replicate a,b,c --repl-listen <own>`), the first
 * `started` of them running and linked; `join(i)` starts member i later.
 */
async function startGroup(
  n: number,
  started = n,
): Promise<ProcessHandle[] & { join(i: number): Promise<ProcessHandle> }> {
  const ports = Array.from({ length: n }, () => freePort());
  const list = ports.map((p) => `127.0.0.1:${p}`).join(",");
  const member = (i: number) =>
    startMemrep([
      "serve",
      "-v",
      ...FLAGS,
      "--replicate",
      list,
      "--repl-listen",
      `127.0.0.1:${ports[i]}`,
    ]);
  const nodes = Object.assign([] as ProcessHandle[], {
    async join(i: number) {
      const node = await member(i);
      nodes.push(node);
      return node;
    },
  });
  try {
    for (let i = 0; i < started; i++) nodes.push(await member(i));
    const deadline = performance.now() + 20_000;
    for (const node of nodes) {
      const want = started === n ? "up" : undefined;
      for (;;) {
        const st = await stats(node.port);
        const up = Number(st.get("repl_group_up") ?? 0);
        if (want ? st.get("repl_link") === want : up >= started) break;
        if (performance.now() > deadline) throw new Error("the group did not link");
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    return nodes;
  } catch (e) {
    await Promise.all(nodes.map((x) => x.stop()));
    throw e;
  }
}

/** Percentile (0..1) of samples. */
function percentile(xs: number[], p: number): number {
  const s = [...xs].sort((x, y) => x - y);
  return s[Math.min(s.length - 1, Math.floor(p * s.length))];
}

/** "p50 a ms, p99 b ms, max c ms" of lag samples. */
function lagText(xs: number[]): string {
  return `p50 ${percentile(xs, 0.5).toFixed(2)} ms, p99 ${
    percentile(xs, 0.99).toFixed(2)
  } ms, max ${Math.max(...xs).toFixed(2)} ms`;
}

/**
 * The lag figures of `run`'s peer `i` (called `peer`), under `what`: the
 * writer's own p50 and p99 (change → the peer's acknowledgement), then what
 * a client sees, beside that method's floor and the idle figures.
 */
function lagResults(what: string, peer: string, run: LagRun, i: number): Result[] {
  const lags = run.loaded[i], [p50, p99] = run.acked[i], [a50, a99] = run.applied[i];
  const to = what === "replication" ? "" : ` to ${peer}`;
  return [{
    name: `${what} lag${to} p50 (ms)`,
    value: p50,
    detail: `the writer's stats near the end of a memcaslap load on it (no probes): ` +
      `from each change to ${peer}'s acknowledgement of having applied it, its latest 4096 samples`,
  }, {
    name: `${what} lag${to} p99 (ms)`,
    value: p99,
    detail: `the same window (the acknowledgement's way back included)`,
  }, {
    name: `${what} apply lag${to} p99 (ms)`,
    value: a99,
    detail: `${peer}'s own stats at the same moment: from the change's version clock (wall ms, ` +
      `so to the millisecond) to its apply there, its latest 4096 changes; p50 ${a50} ms`,
  }, {
    name: `${what} client-seen lag${to} p99 (ms)`,
    value: percentile(lags, 0.99),
    detail: `in a second load, a client saw STORED from the writer → its mg hit on ${peer} in ${
      lagText(lags)
    } (${lags.length} probes), where ${peer}'s own mg round trip (the method's floor) took ${
      lagText(run.floor[i])
    }; with no load, warmed: ${lagText(run.idle[i])}; ${run.sched}`,
  }];
}

/**
 * Milliseconds that the threads of `pids` spent running, and runnable but
 * waiting for a core (the scheduler's run queue), so far: the sums of
 * /proc/<pid>/task/<tid>/schedstat's first two fields. Linux only.
 */
function schedTimes(pids: number[]): { run: number; wait: number } {
  let run = 0, wait = 0;
  for (const pid of pids) {
    try {
      for (const t of Deno.readDirSync(`/proc/${pid}/task`)) {
        const f = Deno.readTextFileSync(`/proc/${pid}/task/${t.name}/schedstat`).split(" ");
        run += Number(f[0]) / 1e6;
        wait += Number(f[1]) / 1e6;
      }
    } catch { /* exited, or no schedstat */ }
  }
  return { run, wait };
}

/** What {@linkcode lagRuns} measured, per peer. */
interface LagRun {
  /** Client-seen lags under load (ms). */
  loaded: number[][];
  /** The same peer's plain `mg` round trips meanwhile (ms): the client method's own floor. */
  floor: number[][];
  /** The writer's own figures near the end of the load: [p50, p99] ms, change → peer's ack. */
  acked: [number, number][];
  /** The peer's own figures then: [p50, p99] ms, change (its version's clock) → applied. */
  applied: [number, number][];
  /** Client-seen lags with no load (ms), after as many probes to warm up. */
  idle: number[][];
  /** Run-queue figures of the servers while probing. */
  sched: string;
}

/**
 * Lag from member `from` to each of `to` while memcaslap loads `from`, in
 * runs of their own (the probes' connections would weigh on a throughput
 * figure). First a load alone: near its end the writer's own percentiles
 * are read (lag.ts: from each change, on whichever thread, to the peer's
 * acknowledgement of having applied it) and the peers' (link.ts: from the
 * change's version clock, in wall ms, to its apply there); `statPrefix[i]`
 * names `to[i]`'s lines in `from`'s stats (`repl_` for a pair's peer,
 * `repl_peer_<n>_` for a group's), `fromPrefix` `from`'s in theirs. Then a
 * load with the client probes (which poll back to back, so they add a
 * busy client per peer on the same cores), with the servers' run-queue
 * wait meanwhile; then the probes with no load at all.
 */
async function lagRuns(
  ctx: BenchContext,
  cfg: string,
  from: ProcessHandle,
  to: ProcessHandle[],
  statPrefix: string[],
  fromPrefix: string,
  probes: number,
): Promise<LagRun> {
  const pids = [from, ...to].map((n) => n.pid);
  let slap = memcaslap(from.port, ctx.seconds, cfg);
  // The windows hold the latest 4,096 samples: read them while the load still runs.
  await new Promise((r) => setTimeout(r, 1000 * ctx.seconds - 1000));
  const [st, ...peerStats] = await Promise.all([from, ...to].map((n) => stats(n.port)));
  const acked = statPrefix.map((p): [number, number] => [
    Number(st.get(`${p}lag_p50_ms`)),
    Number(st.get(`${p}lag_p99_ms`)),
  ]);
  const applied = peerStats.map((ps): [number, number] => [
    Number(ps.get(`${fromPrefix}apply_lag_p50_ms`)),
    Number(ps.get(`${fromPrefix}apply_lag_p99_ms`)),
  ]);
  await slap;
  slap = memcaslap(from.port, ctx.seconds, cfg);
  await new Promise((r) => setTimeout(r, 500));
  const s0 = schedTimes(pids), t0 = performance.now();
  const runs = await Promise.all(to.map((n) => probeLag(from.port, n.port, probes)));
  const s1 = schedTimes(pids), secs = (performance.now() - t0) / 1000;
  await slap;
  await Promise.all(to.map((n) => probeLag(from.port, n.port, 100)));
  const idle = (await Promise.all(to.map((n) => probeLag(from.port, n.port, 300)))).map((r) =>
    r.lags
  );
  const sched = `the ${pids.length} servers' threads ran ${
    ((s1.run - s0.run) / secs).toFixed(0)
  } ms and waited for a core ${((s1.wait - s0.wait) / secs).toFixed(0)} ms per second of probing`;
  const loaded = runs.map((r) => r.lags), floor = runs.map((r) => r.floor);
  return { loaded, floor, acked, applied, idle, sched };
}

/** Connections a probe writes through, in turn. */
const PROBE_WRITERS = 4;

/**
 * Write a fresh key on A, then poll B until it shows: milliseconds from the
 * client's receipt of A's STORED to its first hit on B (so the figure is
 * what a client sees: it includes one `mg` round trip of polling on B, and
 * no part of the write before STORED), `count` times, 5 ms apart. The
 * writes go through {@linkcode PROBE_WRITERS} connections in turn: with
 * serve threads each connection lands on one thread (SO_REUSEPORT), and a
 * single one would measure only the main thread's path or only a worker's.
 * After each hit one more `mg` of the key is timed: B's round trip alone,
 * the floor of this method (`floor`).
 */
async function probeLag(
  aPort: number,
  bPort: number,
  count: number,
): Promise<{ lags: number[]; floor: number[] }> {
  const writers: TestConn[] = [];
  for (let i = 0; i < PROBE_WRITERS; i++) writers.push(await connect(aPort));
  const cb = await connect(bPort);
  const lags: number[] = [], floor: number[] = [];
  try {
    for (let i = 0; i < count; i++) {
      const key = `lagprobe:${i}:${Date.now()}`;
      const reply = await writers[i % PROBE_WRITERS].request(`set ${key} 0 0 1\r\nx\r\n`);
      if (reply !== "STORED\r\n") throw new Error(`probe set: ${reply}`);
      const t0 = performance.now();
      while (!(await hit(cb, key))) {
        if (performance.now() - t0 > 5000) throw new Error("probe key never reached B");
      }
      const t1 = performance.now();
      lags.push(t1 - t0);
      await hit(cb, key);
      floor.push(performance.now() - t1);
      await new Promise((r) => setTimeout(r, 5));
    }
  } finally {
    await Promise.all([...writers.map((c) => c.close()), cb.close()]);
  }
  return { lags, floor };
}

async function hit(c: TestConn, key: string): Promise<boolean> {
  const r = await c.request(`mg ${key}`);
  return r.startsWith("HD");
}

/** Kill (or stop) B of a fresh pair and time until A listens on the replication port again. */
async function takeover(signal: "SIGKILL" | "SIGSTOP", timeoutMs: number): Promise<number> {
  const [a, b] = await startPair(["--repl-timeout", String(timeoutMs)]);
  try {
    const mark = a.outputLines().length;
    const t0 = performance.now();
    b.kill(signal);
    await a.waitForLog(/^replication: listen$/, timeoutMs + 10_000, mark);
    return performance.now() - t0;
  } finally {
    b.kill("SIGCONT");
    await Promise.all([a.stop(), b.stop()]);
  }
}

/** Replication section. */
export const replication: Section = {
  name: "replication",
  title: "serve --replicate: replicated node vs single serve, lag, full copy, takeover",
  async run(ctx: BenchContext): Promise<Result[] | string> {
    const why = await unavailable("serve");
    if (why) return why;
    const results: Result[] = [];
    const cfg = await slapConfig();
    // 1. Throughput on a replicated node against a single one, alternating; then lag.
    const single = await startMemrep(["serve", ...FLAGS]);
    let pair: [ProcessHandle, ProcessHandle] | undefined;
    try {
      pair = await startPair();
      const [a, b] = pair;
      const samples = await alternate(ctx, [
        {
          name: "single",
          measure: async () => (await memcaslap(single.port, ctx.seconds, cfg)).tps,
        },
        {
          name: "replicated",
          measure: async () => (await memcaslap(a.port, ctx.seconds, cfg)).tps,
        },
      ]);
      const r = median(samples.get("replicated")!), s = median(samples.get("single")!);
      const [sa, sb] = await Promise.all([stats(a.port), stats(b.port)]);
      results.push({
        name: "replicated/single throughput ratio",
        value: r / s,
        detail:
          `replicated node ${fmt(r)} TPS, single serve ${fmt(s)} TPS (median of ${ctx.rounds} ` +
          `alternating ${ctx.seconds} s memcaslap 90/10 runs; peer applied ${
            sb.get("repl_changes_applied")
          } changes, A sent ${sa.get("repl_changes_sent")}, ignored ${
            sb.get("repl_changes_ignored")
          })`,
      });
      const lag = await lagRuns(
        ctx,
        cfg,
        a,
        [b],
        ["repl_"],
        "repl_",
        Math.max(50, ctx.seconds * 40),
      );
      results.push(...lagResults("replication", "B", lag, 0));
    } finally {
      await Promise.all([single.stop(), pair?.[0].stop(), pair?.[1].stop()]);
      await Deno.remove(cfg);
    }

    // 2. Full copy rate: A holds ctx.items 100-byte items, B joins.
    const repl = String(freePort());
    const a = await startMemrep(["serve", "-v", ...FLAGS, "-x", "127.0.0.1", "-X", repl]);
    let b: ProcessHandle | undefined;
    try {
      await a.waitForLog(/^replication: listen$/, 10_000);
      ctx.log(`  loading ${fmt(ctx.items)} items into A`);
      await loadItems(a.port, ctx.items);
      b = await startMemrep(["serve", "-v", ...FLAGS, "-x", "127.0.0.1", "-X", repl]);
      await b.waitForLog(/^replication: marugoto copying/, 30_000);
      const t0 = performance.now();
      await b.waitForLog(/^replication: start/, 600_000);
      const secs = (performance.now() - t0) / 1000;
      const copied = Number((await stats(b.port)).get("repl_items_copied_received"));
      results.push({
        name: "full copy rate (items/s)",
        value: copied / secs,
        detail: `${fmt(copied)} items of 100 bytes in ${secs.toFixed(2)} s (B's marugoto → start)`,
      });
    } finally {
      await Promise.all([a.stop(), b?.stop()]);
    }

    // 3. One member of a 3-member group against a single serve, alternating; then lag to each peer.
    const cfg3 = await slapConfig();
    const single3 = await startMemrep(["serve", ...FLAGS]);
    let group: ProcessHandle[] | undefined;
    try {
      group = await startGroup(3);
      const [member, peer1, peer2] = group;
      const samples = await alternate(ctx, [
        {
          name: "single",
          measure: async () => (await memcaslap(single3.port, ctx.seconds, cfg3)).tps,
        },
        {
          name: "member",
          measure: async () => (await memcaslap(member.port, ctx.seconds, cfg3)).tps,
        },
      ]);
      const lag = await lagRuns(
        ctx,
        cfg3,
        member,
        [peer1, peer2],
        ["repl_peer_1_", "repl_peer_2_"],
        "repl_peer_0_",
        Math.max(50, ctx.seconds * 20),
      );
      const m = median(samples.get("member")!), s = median(samples.get("single")!);
      results.push({
        name: "3-member group member/single throughput ratio",
        value: m / s,
        detail: `member ${fmt(m)} TPS, single serve ${fmt(s)} TPS (median of ${ctx.rounds} ` +
          `alternating ${ctx.seconds} s memcaslap 90/10 runs; each member sends its writes to 2 peers)`,
      });
      for (const i of [1, 2]) {
        results.push(...lagResults("3-member group", `member ${i}`, lag, i - 1));
      }
    } finally {
      await Promise.all([single3.stop(), ...(group ?? []).map((x) => x.stop())]);
      await Deno.remove(cfg3);
    }

    // 4. A member joining a 3-member group that holds ctx.items items: time until it holds them all.
    let joining: Awaited<ReturnType<typeof startGroup>> | undefined;
    try {
      joining = await startGroup(3, 2);
      ctx.log(`  loading ${fmt(ctx.items)} items into a 2-of-3 group`);
      await loadItems(joining[0].port, ctx.items);
      const t0 = performance.now();
      const third = await joining.join(2);
      let items = 0;
      while (items < ctx.items) {
        if (performance.now() - t0 > 600_000) throw new Error("the joining member never caught up");
        await new Promise((r) => setTimeout(r, 50));
        items = Number((await stats(third.port)).get("curr_items") ?? 0);
      }
      const secs = (performance.now() - t0) / 1000;
      const copies = (await stats(third.port)).get("repl_full_copies_received");
      results.push({
        name: "3-member group: joining member receives all items (s)",
        value: secs,
        detail: `${fmt(ctx.items)} items of 100 bytes, spawn → curr_items complete (${
          fmt(ctx.items / secs)
        } items/s; full copies received: ${copies}, the other member's stream resumed)`,
      });
    } finally {
      await Promise.all((joining ?? []).map((x) => x.stop()));
    }

    // 5. Takeover: the survivor listens on the replication port again.
    const kills: number[] = [];
    for (let i = 0; i < 3; i++) kills.push(await takeover("SIGKILL", 2000));
    results.push({
      name: "takeover after kill -9 (ms)",
      value: median(kills),
      detail: `kill → survivor logs "replication: listen", median of ${
        kills.map((k) => k.toFixed(0)).join(", ")
      } ms`,
    });
    const hang = await takeover("SIGSTOP", 2000);
    results.push({
      name: "takeover after hang (ms)",
      value: hang,
      detail: "SIGSTOP of the peer → survivor listens, --repl-timeout 2000 (target < 2500)",
    });
    return results;
  },
};

/**
 * The `stats` family answered by the proxy itself, as memcached clients
 * expect (every text client's stats call reads `STAT name value` lines):
 *
 * - `stats`: the proxy's own process lines (pid, uptime, time, version,
 *   connections, threads), the client-visible get counters (cmd_get,
 *   get_hits, get_misses: a fallback hit is a hit), mcrouter's num_servers,
 *   num_servers_up / _down, then every other counter summed over the
 *   primaries that answer (items, bytes, limit_maxbytes, cmd_set, ...);
 * - `stats items|slabs|sizes`: the primaries' lines merged per name (sums;
 *   per-class sizes and ages take the largest), in class order;
 * - `stats settings`: the first primary that is up;
 * - `stats reset`: every backend and the proxy's counters; `RESET`;
 * - `stats proxy`: the proxy's counters and per-backend state (STAT lines);
 * - `stats agent`: magent's server list (version line, matrix lines);
 * - `stats conns`: relayed to the first primary that is up;
 * - anything else: `ERROR`, as memcached answers an unknown group.
 * @module
 */

import { type Reply, ReplyKind } from "../../client/mod.ts";
import { ascii, Op, REPLY, type Request } from "../../protocol/mod.ts";
import type { Backend } from "../pool.ts";
import { agentStats, PROXY_VERSION, proxyStats } from "../stats.ts";
import type { ReplySink, RouterCore } from "./core.ts";

const STATS_LINE = ascii("stats\r\n");

/** Names the proxy answers itself in `stats` (a sum over servers would be wrong). */
const OWN = new Set([
  "pid",
  "uptime",
  "time",
  "version",
  "libevent",
  "pointer_size",
  "curr_connections",
  "total_connections",
  "rejected_connections",
  "connection_structures",
  "max_connections",
  "reserved_fds",
  "threads",
  "accepting_conns",
  "cmd_get",
  "get_hits",
  "get_misses",
]);

/** Flags and levels: the largest value, not a sum. */
const LARGEST = new Set([
  "hash_power_level",
  "hash_is_expanding",
  "slab_reassign_running",
  "lru_crawler_running",
  "chunk_size",
  "chunks_per_page",
  "age",
  "age_hot",
  "age_warm",
]);

/** `stats`, `stats <group>`. */
export function statsCommand(
  core: RouterCore,
  req: Request,
  raw: Uint8Array,
  sink: ReplySink,
): void {
  if (req.ntokens === 1) return statsAll(core, sink);
  const group = req.ntokens === 2 ? groupOf(req) : "";
  switch (group) {
    case "proxy":
      return sink.reply(ascii(proxyStats(
        core.stats,
        core.servers,
        core.copies,
        core.zone === undefined ? undefined : { name: core.zone, count: core.zones.length + 1 },
      )));
    case "agent":
      return sink.reply(ascii(agentStats(core.servers, core.copies)));
    case "items":
    case "slabs":
    case "sizes":
      return merged(core, raw, sink);
    case "reset":
      return reset(core, raw, sink);
    case "settings":
    case "conns":
      return relayFirst(core, raw, sink);
    default:
      return sink.reply(REPLY.ERROR);
  }
}

function groupOf(req: Request): string {
  for (const g of ["proxy", "agent", "items", "slabs", "sizes", "reset", "settings", "conns"]) {
    if (req.tokenIs(1, g)) return g;
  }
  return "";
}

/** The STAT maps of every primary that answers `parts` with STAT lines. */
async function ask(core: RouterCore, parts: readonly Uint8Array[]): Promise<Map<string, string>[]> {
  const replies = await Promise.all(
    core.servers.filter((b) => b.up).map((b) => core.ask(b, Op.STATS, parts).catch(() => null)),
  );
  return replies.filter((r): r is Reply => r !== null && r.kind === ReplyKind.STATS).map((r) =>
    r.stats()
  );
}

function statsAll(core: RouterCore, sink: ReplySink): void {
  const ticket = sink.reserve();
  ask(core, [STATS_LINE]).then((maps) => {
    const st = core.stats;
    const now = Date.now();
    const up = core.servers.filter((b) => b.up).length;
    const own: [string, string | number][] = [
      ["pid", Deno.pid],
      ["uptime", Math.floor((now - st.startedAt) / 1000)],
      ["time", Math.floor(now / 1000)],
      ["version", PROXY_VERSION],
      ["pointer_size", 64],
      ["curr_connections", st.currConnections],
      ["total_connections", st.totalConnections],
      ["rejected_connections", st.rejectedConnections],
      ["threads", 1],
      ["accepting_conns", 1],
      ["num_servers", core.servers.length],
      ["num_servers_up", up],
      ["num_servers_down", core.servers.length - up],
      ["num_backups", core.backups.length],
      ["cmd_get", st.gets],
      ["get_hits", st.hits],
      ["get_misses", st.misses],
    ];
    let out = "";
    for (const [k, v] of own) out += `STAT ${k} ${v}\r\n`;
    for (const [k, v] of combine(maps)) if (!OWN.has(k)) out += `STAT ${k} ${v}\r\n`;
    sink.fill(ticket, ascii(out + "END\r\n"));
  }, () => core.noBackend(sink, ticket));
}

/** `stats items|slabs|sizes`: merged over the primaries, in class order. */
function merged(core: RouterCore, raw: Uint8Array, sink: ReplySink): void {
  const ticket = sink.reserve();
  const parts = [raw.slice()];
  ask(core, parts).then((maps) => {
    const rows = [...combine(maps)];
    // "items:5:number", "5:chunk_size", "96" (sizes): by class / size; totals last.
    const order = (name: string) => {
      const m = /^(?:items:)?(\d+)(?::|$)/.exec(name);
      return m === null ? Infinity : Number(m[1]);
    };
    const indexed = rows.map((r, i) => ({ r, i, o: order(r[0]) }));
    indexed.sort((a, b) => a.o - b.o || a.i - b.i);
    let out = "";
    for (const { r } of indexed) out += `STAT ${r[0]} ${r[1]}\r\n`;
    sink.fill(ticket, ascii(out + "END\r\n"));
  }, () => core.noBackend(sink, ticket));
}

/**
 * STAT maps combined per name, in first-seen order: integers summed (the
 * largest for {@linkcode LARGEST}), decimals (rusage) summed to 6 places,
 * anything else the first server's value.
 */
function combine(maps: readonly Map<string, string>[]): Map<string, string> {
  const out = new Map<string, string>();
  const all = new Map<string, string[]>();
  for (const m of maps) {
    for (const [k, v] of m) {
      let vs = all.get(k);
      if (vs === undefined) all.set(k, vs = []);
      vs.push(v);
    }
  }
  const leaf = (k: string) => k.slice(k.lastIndexOf(":") + 1);
  for (const [k, vs] of all) {
    if (vs.every((v) => /^\d+$/.test(v))) {
      let n = 0n;
      for (const v of vs) {
        const x = BigInt(v);
        n = LARGEST.has(leaf(k)) ? (x > n ? x : n) : n + x;
      }
      out.set(k, n.toString());
    } else if (vs.every((v) => /^\d+\.\d+$/.test(v))) {
      out.set(k, vs.reduce((s, v) => s + Number(v), 0).toFixed(6));
    } else out.set(k, vs[0]);
  }
  return out;
}

/** `stats reset`: every backend, and the proxy's own counters. */
function reset(core: RouterCore, raw: Uint8Array, sink: ReplySink): void {
  const ticket = sink.reserve();
  const parts = [raw.slice()];
  core.stats.reset();
  const all: Backend[] = [...core.servers, ...core.copies].filter((b) => b.up);
  Promise.all(all.map((b) => core.ask(b, Op.STATS, parts).catch(() => null))).then((got) => {
    if (got.some((r) => r !== null && r.kind === ReplyKind.RESET)) sink.fill(ticket, REPLY.RESET);
    else {
      const any = got.find((r) => r !== null);
      if (any) sink.fill(ticket, (any as Reply).bytes);
      else core.noBackend(sink, ticket);
    }
  });
}

/** Other groups: the first primary that is up answers. */
function relayFirst(core: RouterCore, raw: Uint8Array, sink: ReplySink): void {
  const ticket = sink.reserve();
  const b = core.servers.find((s) => s.up) ?? core.servers[0];
  core.call(b, Op.STATS, [raw], (r) => sink.fill(ticket, r.bytes), () => {
    core.noBackend(sink, ticket);
  });
}

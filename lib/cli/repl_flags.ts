/**
 * `serve`'s replication flags: `--replicate` (the pair's address, or a
 * group's member list and which member this node is), repcached's -x/-X
 * and the `--repl-*` options, checked into {@linkcode ReplicationOptions}.
 * @module
 */

import { intFlag, listFlag, parseHostPort, sizeFlag, stringFlag, UsageError } from "./flags.ts";
import { log } from "../log.ts";
import { errorText } from "../transport/mod.ts";
import type { HostPort, ReplicationOptions } from "../replication/mod.ts";
import { replTls } from "./tls_flags.ts";

/**
 * Which of the group's `members` this node is: the one equal to
 * `--repl-listen` when given; else the only one whose host is one of the
 * `-l` addresses, or else the only one whose host is an address of this
 * machine (a listener can bind it).
 */
function groupMembers(
  members: HostPort[],
  listenFlag: string | undefined,
  listenHosts: string[],
): { self: number; listen: HostPort } {
  if (members.length > 16) throw new UsageError("--replicate: at most 16 members");
  const keys = members.map((m) => `${m.host}:${m.port}`);
  if (new Set(keys).size !== keys.length) {
    throw new UsageError("--replicate: a member is listed twice");
  }
  if (listenFlag !== undefined) {
    const listen = parseHostPort(listenFlag, "--repl-listen");
    const self = keys.indexOf(`${listen.host}:${listen.port}`);
    if (self < 0) {
      throw new UsageError(`--repl-listen ${listenFlag} is not one of the --replicate addresses`);
    }
    if (members.length < 2) throw new UsageError("--replicate: a group needs another member");
    return { self, listen };
  }
  const named = members.flatMap((m, i) =>
    listenHosts.includes(m.host) && m.host !== "0.0.0.0" && m.host !== "::" ? [i] : []
  );
  const local = named.length === 1
    ? named
    : members.flatMap((m, i) => (bindable(m.host) ? [i] : []));
  if (local.length !== 1) {
    throw new UsageError(
      `--replicate: cannot tell which member this node is (${
        local.length === 0 ? "no address is this machine's" : "several are this machine's"
      }); name it with --repl-listen host:port`,
    );
  }
  return { self: local[0], listen: members[local[0]] };
}

/** Can a listener bind `host` here (an address of this machine)? */
function bindable(host: string): boolean {
  try {
    Deno.listen({ hostname: host, port: 0 }).close();
    return true;
  } catch {
    return false;
  }
}

/**
 * The replication options of `serve`'s flags (null: no replication):
 * `--replicate` (one address: the pair; a list: a group) or repcached's
 * -x/-X, and the `--repl-*` options, checked.
 */
export function replicationOptions(
  v: Record<string, unknown>,
  listenHost: string,
  listenHosts: string[] = [listenHost],
): ReplicationOptions | null {
  const values = v as Parameters<typeof stringFlag>[0];
  const replicate = listFlag(values, "replicate").join(",");
  const xHost = stringFlag(values, "repl-host");
  const xPort = stringFlag(values, "repl-port");
  if (!replicate && !xHost && !xPort) {
    for (
      const f of [
        "repl-sync",
        "repl-sync-timeout",
        "repl-sync-degrade",
        "repl-secret",
        "repl-secret-file",
        "repl-timeout",
        "repl-backlog",
        "repl-drain-timeout",
        "repl-tls-cert",
        "repl-tls-key",
        "repl-tls-ca",
        "repl-listen",
      ]
    ) {
      if (values[f] !== undefined) throw new UsageError(`--${f} needs --replicate (or -x/-X)`);
    }
    return null;
  }
  if (replicate && (xHost || xPort)) {
    throw new UsageError("use either --replicate or -x/-X, not both");
  }
  const members = replicate
    ? replicate.split(",").filter((m) => m.trim() !== "").map((m) =>
      parseHostPort(m.trim(), "--replicate")
    )
    : [parseHostPort(`${xHost ?? "127.0.0.1"}:${xPort ?? "11212"}`, "-x/-X")];
  const listenFlag = stringFlag(values, "repl-listen");
  if (members.length === 0) throw new UsageError("--replicate: no address given");
  // One address: the pair (repcached's form); a list: a group, this node one of its members.
  const group = members.length > 1 || listenFlag !== undefined
    ? groupMembers(members, listenFlag, listenHosts)
    : undefined;
  if (group && xHost !== undefined) throw new UsageError("-x/-X name one peer; use --replicate");
  const peer = members[0];
  if (stringFlag(values, "repl-secret") !== undefined) {
    log.warn(
      "memrep: --repl-secret is visible to every user of this host (ps); use --repl-secret-file <file> or MEMREP_REPL_SECRET instead",
    );
  }
  let secret = stringFlag(values, "repl-secret") ?? Deno.env.get("MEMREP_REPL_SECRET");
  const secretFile = stringFlag(values, "repl-secret-file");
  if (secretFile) {
    try {
      secret = Deno.readTextFileSync(secretFile).trim();
    } catch (err) {
      throw new UsageError(`--repl-secret-file: cannot read ${secretFile}: ${errorText(err)}`);
    }
  }
  const syncMode = stringFlag(values, "repl-sync");
  if (syncMode !== undefined && syncMode !== "all" && syncMode !== "quorum") {
    throw new UsageError(`--repl-sync: unknown mode '${syncMode}' (expected all or quorum)`);
  }
  const sync = syncMode !== undefined;
  for (const f of ["repl-sync-timeout", "repl-sync-degrade"]) {
    if (!sync && values[f] !== undefined) throw new UsageError(`--${f} needs --repl-sync`);
  }
  const timeoutMs = intFlag(values, "repl-timeout", 2000, 100, 3_600_000);
  return {
    peer,
    listen: group ? group.listen : { host: listenHost, port: peer.port },
    group: group ? { members, self: group.self } : undefined,
    secret: secret || undefined,
    sync,
    syncMode: syncMode === "quorum" ? "quorum" : "all",
    syncDegrade: Boolean(values["repl-sync-degrade"]),
    syncTimeoutMs: intFlag(values, "repl-sync-timeout", timeoutMs, 1, 3_600_000),
    timeoutMs,
    backlogBytes: sizeFlag(values, "repl-backlog", 64 * 1048576),
    drainTimeoutMs: intFlag(values, "repl-drain-timeout", 10_000, 0, 3_600_000),
    tls: replTls(
      stringFlag(values, "repl-tls-cert"),
      stringFlag(values, "repl-tls-key"),
      stringFlag(values, "repl-tls-ca"),
    ),
  };
}

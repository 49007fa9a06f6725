/**
 * Zones (EVCache's zone copies, memcached proxy's `zfailover`): the servers
 * of a pool are grouped by their `zone`, and every zone holds a full copy of
 * the keys on its own ring. The proxy's zone is the local one: its ring
 * places a key's primary. Each other zone's ring gives the key's copy there;
 * those copies take every write as backups do and answer reads the local
 * zone cannot. This module only groups servers: pools.ts (and the command
 * line) build a ring per zone from a plan, router/core.ts uses the rings.
 * @module
 */

import type { Backend } from "./pool.ts";
import type { Distribution } from "./ketama.ts";

/** Another zone's full copy: its servers and how keys are spread over them. */
export interface ZoneRing {
  /** The zone's name. */
  readonly name: string;
  /** Its servers, in ring order. */
  readonly servers: readonly Backend[];
  /** Key placement over {@linkcode servers}. */
  readonly dist: Distribution;
}

/** How the servers of a pool split into zones (indexes into the server list). */
export interface ZonePlan {
  /** The local zone's name (undefined: no zones). */
  local: string | undefined;
  /** Indexes of the local zone's servers, in list order. */
  localMembers: number[];
  /** The other zones in the order they first appear, each with its server indexes. */
  remote: { name: string; members: number[] }[];
}

/** A server list whose zones cannot be used; the message says why. */
export class ZoneError extends Error {
  /** A zone error. */
  constructor(message: string) {
    super(message);
    this.name = "ZoneError";
  }
}

/**
 * Group servers by zone. Either every server has a zone or none has (a
 * server in no zone would hold no full copy). The local zone is `proxyZone`
 * when servers are in it, else the first zone listed (a proxy in a zone
 * without cache servers reads from the first zone it was given). `order`
 * gives the zones' first appearance (file order), when the list was sorted.
 */
export function planZones(
  zones: readonly (string | undefined)[],
  proxyZone: string | undefined,
  order?: readonly string[],
): ZonePlan {
  const all = zones.map((_, i) => i);
  const given = zones.filter((z) => z !== undefined).length;
  if (given === 0) return { local: undefined, localMembers: all, remote: [] };
  if (given !== zones.length) {
    throw new ZoneError(
      "every server needs a zone once one has one (each zone holds a full copy of the keys)",
    );
  }
  const names: string[] = [];
  for (const z of [...(order ?? []), ...(zones as string[])]) {
    if (!names.includes(z) && zones.includes(z)) names.push(z);
  }
  const local = proxyZone !== undefined && names.includes(proxyZone) ? proxyZone : names[0];
  const members = (name: string) => all.filter((i) => zones[i] === name);
  return {
    local,
    localMembers: members(local),
    remote: names.filter((n) => n !== local).map((name) => ({ name, members: members(name) })),
  };
}

/**
 * `host:port@zone` (the command line's form of a server's zone): the
 * address and the zone, or the text as is with no zone.
 */
export function splitZone(text: string): { addr: string; zone: string | undefined } {
  const at = text.lastIndexOf("@");
  if (at < 0) return { addr: text, zone: undefined };
  return { addr: text.slice(0, at), zone: text.slice(at + 1) };
}

/**
 * `stats` through the proxy answers `STAT name value` lines, as every text
 * client's stats call expects: the proxy's own lines plus counters summed
 * over the primaries; the sub-groups answer too, never ERROR.
 */

import { equal, ok } from "../helpers/assert.ts";
import { connect, ignoreUnless } from "../helpers/mod.ts";
import { pymemcacheAvailable } from "../helpers/pymemcache.ts";
import { setMany, startCluster } from "./cluster.ts";

/** Parse a stats reply strictly: only `STAT <name> <value>` lines, then END. */
function statLines(reply: string): Map<string, string> {
  ok(reply.endsWith("END\r\n"), `ends with END: ${JSON.stringify(reply.slice(-40))}`);
  const out = new Map<string, string>();
  for (const line of reply.slice(0, -5).split("\r\n").filter((l) => l !== "")) {
    const m = /^STAT (\S+) (\S.*)$/.exec(line);
    ok(m !== null, `a STAT line: ${JSON.stringify(line)}`);
    out.set(m![1], m![2]);
  }
  return out;
}

Deno.test({
  name: "stats through the proxy: STAT lines, counters summed over the primaries",
  ignore: ignoreUnless("proxy stats", ["memcached"]),
  async fn() {
    const cluster = await startCluster({ servers: 2, backups: 1 });
    try {
      const c = await connect(cluster.proxy.port);
      const keys = Array.from({ length: 300 }, (_, i) => `st:${i}`);
      equal((await setMany(c, keys.map((k) => [k, "x".repeat(i(k))]))).size, keys.length);
      for (const k of keys.slice(0, 50)) await c.request(`get ${k}`, "END\r\n");
      await c.request("get st:none", "END\r\n");

      const s = statLines(await c.request("stats", "END\r\n", 5000));
      for (
        const n of ["pid", "uptime", "time", "version", "curr_connections", "total_connections"]
      ) {
        ok(s.has(n), `stats has ${n}`);
      }
      equal(s.get("version"), "1.6.18");
      equal(s.get("num_servers"), "2");
      equal(s.get("get_hits"), "50");
      equal(s.get("get_misses"), "1");
      equal(s.get("curr_items"), String(keys.length), "items summed over the primaries");
      equal(s.get("cmd_set"), String(keys.length));
      // Each primary's limit_maxbytes (64 MiB default) adds up.
      equal(s.get("limit_maxbytes"), String(2 * 64 * 1048576));

      for (const group of ["items", "slabs", "sizes", "settings"]) {
        const reply = await c.request(`stats ${group}`, "END\r\n", 5000);
        const g = statLines(reply);
        ok(g.size > 0, `stats ${group} has lines`);
      }
      const items = statLines(await c.request("stats items", "END\r\n"));
      let number = 0;
      for (const [k, v] of items) if (/^items:\d+:number$/.test(k)) number += Number(v);
      equal(number, keys.length, "stats items: item counts summed");
      equal(await c.request("stats nonsense"), "ERROR\r\n");

      equal(await c.request("stats reset"), "RESET\r\n");
      const after = statLines(await c.request("stats", "END\r\n", 5000));
      equal(after.get("get_hits"), "0");
      equal(after.get("cmd_set"), "0", "the primaries were reset too");
      equal(after.get("curr_items"), String(keys.length), "reset leaves the data");
      await c.close();
    } finally {
      await cluster.stop();
    }
  },
});

function i(k: string): number {
  return 1 + (Number(k.slice(3)) % 200);
}

const PY = "stats through the proxy parse with pymemcache";

Deno.test({
  name: PY,
  ignore: ignoreUnless(PY, ["memcached"]) || !pymemcacheAvailable(PY),
  async fn() {
    const cluster = await startCluster({ servers: 2, backups: 1 });
    try {
      const script = `
import sys, json
from pymemcache.client.base import Client
c = Client(("127.0.0.1", int(sys.argv[1])))
c.set("a", "1"); c.get("a")
s = c.stats()
out = {"pid": s[b"pid"], "uptime": s[b"uptime"], "get_hits": s[b"get_hits"],
       "curr_items": s[b"curr_items"], "version": s[b"version"].decode()}
for g in ("items", "slabs", "settings", "sizes"):
    out[g] = len(c.stats(g))
print(json.dumps(out))
`;
      const out = await new Deno.Command("/usr/bin/python3", {
        args: ["-c", script, String(cluster.proxy.port)],
        stdout: "piped",
        stderr: "piped",
      }).output();
      const text = new TextDecoder().decode(out.stdout);
      equal(out.code, 0, new TextDecoder().decode(out.stderr));
      const r = JSON.parse(text);
      ok(r.pid > 0 && r.uptime >= 0, text);
      equal(r.get_hits, 1);
      equal(r.curr_items, 1);
      equal(r.version, "1.6.18");
      for (const g of ["items", "slabs", "settings", "sizes"]) ok(r[g] > 0, `stats ${g}: ${text}`);
    } finally {
      await cluster.stop();
    }
  },
});

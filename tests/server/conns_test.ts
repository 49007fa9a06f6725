/**
 * `stats conns` and `-o idle_timeout` (memcached's t/stats-conns.t and
 * t/idle-timeout.t), with the same assertions on memrep and real memcached.
 * @module
 */

import {
  connect,
  equal,
  ignoreUnless,
  match,
  ok,
  type ProcessHandle,
  startMemcached,
  startMemrep,
} from "../helpers/mod.ts";

async function statsConns(port: number): Promise<string> {
  const c = await connect(port);
  try {
    return await c.request("stats conns\r\n", "END\r\n");
  } finally {
    await c.close();
  }
}

async function checkConns(server: ProcessHandle): Promise<void> {
  const busy = await connect(server.port);
  const idle = await connect(server.port);
  try {
    equal(await idle.request("version\r\n"), "VERSION 1.6.18\r\n");
    await busy.send("set foo 0 0 6\r\n"); // mid-command
    await new Promise((r) => setTimeout(r, 2200));
    const stats = await statsConns(server.port);
    const p = server.port;
    match(
      stats,
      new RegExp(
        `^STAT (\\d+):addr tcp:127\\.0\\.0\\.1:${p}\\r\\nSTAT \\1:state conn_listening\\r\\n`,
      ),
    );
    match(stats, new RegExp(`STAT \\d+:listen_addr tcp:127\\.0\\.0\\.1:${p}\\r\\n`));
    match(stats, /STAT \d+:addr tcp:127\.0\.0\.1:\d+\r\nSTAT \d+:listen_addr/);
    match(stats, /STAT \d+:state conn_parse_cmd\r\nSTAT \d+:secs_since_last_cmd 0\r\n/);
    match(stats, /STAT \d+:secs_since_last_cmd [1-9]\r\n/);
    match(stats, /STAT \d+:state conn_nread\r\n/, "the connection inside a set");
    ok(stats.endsWith("END\r\n"));
    // Three clients (busy, idle, the asking one), each with four lines.
    equal(stats.match(/:listen_addr /g)?.length, 3, stats);
  } finally {
    await Promise.all([busy.close(), idle.close()]);
  }
}

Deno.test("stats conns lists the listener and every connection as memcached does", async () => {
  const server = await startMemrep(["serve", "-t", "1"]);
  try {
    await checkConns(server);
  } finally {
    await server.stop();
  }
});

const REF_CONNS = "stats conns checks hold on real memcached";

Deno.test({
  name: REF_CONNS,
  ignore: ignoreUnless(REF_CONNS, ["memcached"]),
  async fn() {
    // One worker thread: memcached then shows every connection in one state set.
    const server = await startMemcached(["-t", "1"]);
    try {
      await checkConns(server);
    } finally {
      await server.stop();
    }
  },
});

async function checkIdleTimeout(server: ProcessHandle): Promise<void> {
  const admin = await connect(server.port);
  const idle = await connect(server.port);
  const active = await connect(server.port);
  try {
    equal((await admin.stats("settings")).get("idle_timeout"), "2");
    equal((await admin.stats()).get("idle_kicks"), "0");
    equal(await idle.request("version\r\n"), "VERSION 1.6.18\r\n");
    // `active` and `admin` talk every 400 ms; `idle` stays silent until it is closed.
    const deadline = Date.now() + 15_000;
    while (!idle.eof && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 400));
      equal(await active.request("version\r\n"), "VERSION 1.6.18\r\n");
      await admin.stats();
    }
    ok(idle.eof, "the idle connection was closed");
    ok(!active.eof && !admin.eof, "busy connections stay open");
    ok(Number((await admin.stats()).get("idle_kicks")) >= 1, "idle_kicks counted");
  } finally {
    await Promise.all([admin.close(), idle.close(), active.close()]);
  }
}

Deno.test("-o idle_timeout closes silent connections and counts idle_kicks", async () => {
  const server = await startMemrep(["serve", "-t", "1", "-o", "idle_timeout=2"]);
  try {
    await checkIdleTimeout(server);
  } finally {
    await server.stop();
  }
});

const REF_IDLE = "idle_timeout checks hold on real memcached";

Deno.test({
  name: REF_IDLE,
  ignore: ignoreUnless(REF_IDLE, ["memcached"]),
  async fn() {
    const server = await startMemcached(["-o", "idle_timeout=2"]);
    try {
      await checkIdleTimeout(server);
    } finally {
      await server.stop();
    }
  },
});

/**
 * `watch` log streams (memcached's t/watcher.t): fetchers, mutations and
 * connevents lines in logger.c's formats, and the refusals; the same
 * assertions run on memrep and on real memcached.
 * @module
 */

import {
  connect,
  equal,
  ignoreUnless,
  match,
  type ProcessHandle,
  startMemcached,
  startMemrep,
  type TestConn,
} from "../helpers/mod.ts";

/** Reads log lines until `n` of them arrived. */
async function lines(w: TestConn, n: number): Promise<string[]> {
  const text = await w.readUntilText((buf) => {
    let count = 0, end = -1;
    for (let i = 0; i < buf.length; i++) {
      if (buf[i] === 10 && ++count === n) {
        end = i + 1;
        break;
      }
    }
    return end;
  }, 10_000);
  return text.split("\n").slice(0, n);
}

/**
 * Reads `n` log lines, skipping connection events of other clients than
 * `ports` (the launcher's readiness probe, which a busy memcached worker
 * thread may log after the watch started).
 */
async function linesOf(w: TestConn, n: number, ports: number[]): Promise<string[]> {
  const out: string[] = [];
  while (out.length < n) {
    const [l] = await lines(w, 1);
    const port = / type=conn_\w+ .* rport=(\d+) /.exec(l)?.[1];
    if (port === undefined || ports.includes(Number(port))) out.push(l);
  }
  return out;
}

const TS = String.raw`^ts=\d+\.\d+ gid=\d+ `;

async function checkWatch(server: ProcessHandle): Promise<void> {
  const w = await connect(server.port);
  const refused = await connect(server.port);
  try {
    // Answered, so the server has taken it in: its conn_new cannot come after the watch starts.
    equal((await refused.request("version\r\n")).startsWith("VERSION "), true);
    equal(await w.request("watch fetchers mutations connevents\r\n"), "OK\r\n");
    const c = await connect(server.port);
    equal(await c.request("set vfoo 0 0 4\r\nvbar\r\n"), "STORED\r\n");
    equal(await c.request("get vfoo\r\n", "END\r\n"), "VALUE vfoo 0 4\r\nvbar\r\nEND\r\n");
    equal(await c.request("get no%key\r\n", "END\r\n"), "END\r\n");
    await c.close();
    const log = await linesOf(w, 6, [c.localPort]);
    match(
      log[0],
      new RegExp(TS + "type=conn_new rip=127\\.0\\.0\\.1 rport=\\d+ transport=tcp cfd=\\d+$"),
    );
    match(
      log[1],
      new RegExp(TS + "type=item_get key=vfoo status=not_found clsid=\\d+ cfd=\\d+ size=0$"),
    );
    match(
      log[2],
      new RegExp(
        TS + "type=item_store key=vfoo status=stored cmd=set ttl=0 clsid=\\d+ cfd=\\d+ size=4$",
      ),
    );
    match(
      log[3],
      new RegExp(TS + "type=item_get key=vfoo status=found clsid=\\d+ cfd=\\d+ size=4$"),
    );
    match(
      log[4],
      new RegExp(TS + "type=item_get key=no%25key status=not_found clsid=0 cfd=\\d+ size=0$"),
    );
    match(
      log[5],
      new RegExp(
        TS + "type=conn_close rip=127\\.0\\.0\\.1 rport=\\d+ transport=tcp reason=normal cfd=\\d+$",
      ),
    );
    // A watch behind other replies of the same read, and an unknown stream name.
    equal(
      await refused.request("version\r\nwatch\r\n", "before watch\r\n"),
      "VERSION 1.6.18\r\nERROR cannot pipeline other commands before watch\r\n",
    );
    equal(await refused.request("watch fetchers bogus\r\n"), "ERROR\r\n");
    // memcached's resp_has_stack: a noreply command's reply is pending too; a get wrote out.
    equal(
      await refused.request("touch nokey 1 noreply\r\nwatch\r\n", "before watch\r\n"),
      "ERROR cannot pipeline other commands before watch\r\n",
    );
    const late = await connect(server.port);
    try {
      equal(await late.request("get nokey\r\nwatch\r\n", "OK\r\n"), "END\r\nOK\r\n");
    } finally {
      await late.close();
    }
  } finally {
    await Promise.all([w.close(), refused.close()]);
  }
}

Deno.test("watch streams fetches, stores and connection events in memcached's format", async () => {
  const server = await startMemrep(["serve", "-t", "1"]);
  try {
    await checkWatch(server);
  } finally {
    await server.stop();
  }
});

async function checkEvictions(server: ProcessHandle): Promise<void> {
  const w = await connect(server.port);
  const c = await connect(server.port);
  try {
    equal(await w.request("watch evictions\r\n"), "OK\r\n");
    // 4 MB of 100 KB values in a 2 MB cache: the oldest go.
    const value = "e".repeat(100_000);
    let batch = "";
    for (let i = 0; i < 40; i++) batch += `set ev${i} 0 0 ${value.length} noreply\r\n${value}\r\n`;
    await c.request(batch + "mn\r\n", "MN\r\n");
    const [line] = await lines(w, 1);
    match(
      line,
      new RegExp(TS + "type=eviction key=ev\\d+ fetch=no ttl=-1 la=\\d+ clsid=\\d+ size=100000$"),
    );
  } finally {
    await Promise.all([w.close(), c.close()]);
  }
}

Deno.test("watch evictions streams memcached's eviction lines", async () => {
  const server = await startMemrep(["serve", "-t", "1", "-m", "2", "-I", "1m"]);
  try {
    await checkEvictions(server);
  } finally {
    await server.stop();
  }
});

const REF_EVICTIONS = "watch evictions checks hold on real memcached";

Deno.test({
  name: REF_EVICTIONS,
  ignore: ignoreUnless(REF_EVICTIONS, ["memcached"]),
  async fn() {
    const server = await startMemcached(["-t", "1", "-m", "2", "-I", "1m"]);
    try {
      await checkEvictions(server);
    } finally {
      await server.stop();
    }
  },
});

const REF = "watch checks hold on real memcached";

Deno.test({
  name: REF,
  ignore: ignoreUnless(REF, ["memcached"]),
  async fn() {
    const server = await startMemcached(["-t", "1"]);
    try {
      await checkWatch(server);
    } finally {
      await server.stop();
    }
  },
});

/** The `stats conns` id of the asking connection (the one in conn_parse_cmd). */
async function ownId(c: TestConn): Promise<string> {
  const text = await c.request("stats conns\r\n", "END\r\n");
  const m = /^STAT (\d+):state conn_parse_cmd\r$/m.exec(text);
  if (!m) throw new Error(`no conn_parse_cmd row in ${JSON.stringify(text)}`);
  return m[1];
}

/** Item and connection lines carry cfd = the connection's `stats conns` id (memcached: its fd). */
async function checkCfd(server: ProcessHandle): Promise<void> {
  const w = await connect(server.port);
  const a = await connect(server.port);
  try {
    const aId = await ownId(a);
    equal(await w.request("watch fetchers mutations connevents\r\n"), "OK\r\n");
    await a.send("set cf 0 0 1 noreply\r\nx\r\n");
    const [miss, store] = await linesOf(w, 2, [a.localPort]);
    match(miss, new RegExp(TS + `type=item_get key=cf status=not_found clsid=\\d+ cfd=${aId} `));
    match(store, new RegExp(TS + `type=item_store key=cf status=stored .* cfd=${aId} `));
    const b = await connect(server.port);
    const [opened] = await linesOf(w, 1, [b.localPort]);
    const bId = await ownId(b);
    match(
      opened,
      new RegExp(TS + `type=conn_new rip=127\\.0\\.0\\.1 rport=\\d+ transport=tcp cfd=${bId}$`),
    );
    equal(await b.request("get cf\r\n", "END\r\n"), "VALUE cf 0 1\r\nx\r\nEND\r\n");
    const [hit] = await lines(w, 1);
    match(hit, new RegExp(TS + `type=item_get key=cf status=found clsid=\\d+ cfd=${bId} `));
    await b.close();
  } finally {
    await Promise.all([w.close(), a.close()]);
  }
}

for (const target of ["memrep", "memcached"] as const) {
  const name = `watch lines name the connection by its stats conns id (${target})`;
  Deno.test({
    name,
    ignore: target === "memcached" && ignoreUnless(name, ["memcached"]),
    async fn() {
      const server = target === "memrep"
        ? await startMemrep(["serve", "-t", "1"])
        : await startMemcached(["-t", "1"]);
      try {
        await checkCfd(server);
      } finally {
        await server.stop();
      }
    },
  });
}

/** -W refuses watch; a connection the server closes for a protocol error logs reason=error. */
async function checkRefusalAndErrorClose(flagsServer: ProcessHandle, plain: ProcessHandle) {
  const refused = await connect(flagsServer.port);
  try {
    equal(
      await refused.request("watch connevents\r\n"),
      "CLIENT_ERROR watch commands not allowed\r\n",
    );
  } finally {
    await refused.close();
  }
  const w = await connect(plain.port);
  try {
    equal(await w.request("watch connevents\r\n"), "OK\r\n");
    const c = await connect(plain.port);
    await c.send("GET / HTTP/1.1\r\n"); // memcached drops HTTP requests
    const [opened, closed] = await linesOf(w, 2, [c.localPort]);
    match(opened, new RegExp(TS + "type=conn_new rip=127\\.0\\.0\\.1 rport=\\d+ transport=tcp "));
    match(
      closed,
      new RegExp(TS + "type=conn_close rip=127\\.0\\.0\\.1 rport=\\d+ transport=tcp reason=error "),
    );
    await c.close();
  } finally {
    await w.close();
  }
}

for (const target of ["memrep", "memcached"] as const) {
  const start = (flags: string[]) =>
    target === "memrep" ? startMemrep(["serve", "-t", "1", ...flags]) : startMemcached(flags);
  const refusal = `-W refuses watch; a protocol-error close logs reason=error (${target})`;
  Deno.test({
    name: refusal,
    ignore: target === "memcached" && ignoreUnless(refusal, ["memcached"]),
    async fn() {
      const [noWatch, plain] = await Promise.all([start(["-W"]), start([])]);
      try {
        await checkRefusalAndErrorClose(noWatch, plain);
      } finally {
        await Promise.all([noWatch.stop(), plain.stop()]);
      }
    },
  });
}

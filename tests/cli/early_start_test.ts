/**
 * The first moments of `memrep serve`, as of memcached: serve binds its
 * ports before it loads the server (client test kits talk to a spawned
 * memcached 0.1 s after they start it), so everything a client or a
 * supervisor may do as soon as the port answers must already hold: the
 * first request is answered, the pid file is there, UDP answers too, a
 * SIGTERM stops it cleanly and a SIGHUP does not end it. Each case runs on
 * memcached 1.6.18 too, where it is installed.
 */

import { equal, match, ok } from "../helpers/assert.ts";
import {
  connect,
  freePort,
  haveBinary,
  type ProcessHandle,
  runMemrep,
  startMemcached,
  startMemrep,
} from "../helpers/mod.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();

type Start = (args: string[]) => Promise<ProcessHandle>;

/** memrep serve, and memcached where it is installed, started as a supervisor would. */
const TARGETS: [string, Start][] = [
  ["memrep serve", (args) => startMemrep(["serve", ...args])],
  ...(haveBinary("memcached")
    ? [["memcached", (args: string[]) => startMemcached(args)] as [string, Start]]
    : []),
];

async function version(port: number): Promise<string> {
  const c = await connect(port);
  try {
    await c.send("version\r\n");
    return await c.readUntilText("\r\n");
  } finally {
    await c.close();
  }
}

/** One UDP `version` (memcached's 8-byte frame header); its reply's text, or "" after 5 s. */
async function udpVersion(port: number): Promise<string> {
  const sock = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
  try {
    const frame = new Uint8Array([0, 7, 0, 0, 0, 1, 0, 0, ...enc.encode("version\r\n")]);
    await sock.send(frame, { transport: "udp", hostname: "127.0.0.1", port });
    let timer: ReturnType<typeof setTimeout> | undefined;
    const late = new Promise<string>((r) => timer = setTimeout(() => r(""), 5000));
    const reply = sock.receive().then(([d]) => dec.decode(d.subarray(8)));
    try {
      return await Promise.race([reply, late]);
    } finally {
      clearTimeout(timer);
    }
  } finally {
    sock.close();
  }
}

for (const [name, start] of TARGETS) {
  Deno.test(`${name}: as soon as the port answers, TCP and UDP answer and the pid file is there`, async () => {
    const dir = await Deno.makeTempDir({ prefix: "memrep-early-" });
    const udp = freePort();
    const server = await start(["-U", String(udp), "-P", `${dir}/pid`, "-t", "2"]);
    try {
      equal((await Deno.readTextFile(`${dir}/pid`)).trim(), String(server.pid));
      match(await version(server.port), /^VERSION 1\.6\.18\r\n$/);
      match(await udpVersion(udp), /^VERSION 1\.6\.18\r\n$/);
    } finally {
      await server.stop();
      await Deno.remove(dir, { recursive: true });
    }
  });

  Deno.test(`${name}: a SIGTERM as soon as the port answers stops it cleanly`, async () => {
    for (const threads of ["1", "2"]) {
      const server = await start(["-t", threads]);
      server.kill("SIGTERM");
      const status = await server.status;
      equal(status.code, 0, `-t ${threads}: exit code ${status.code}, signal ${status.signal}`);
    }
  });

  Deno.test(`${name}: a SIGHUP, early or late, does not end it`, async () => {
    const server = await start([]);
    try {
      server.kill("SIGHUP");
      match(await version(server.port), /^VERSION /);
      server.kill("SIGHUP");
      match(await version(server.port), /^VERSION /);
      ok(!server.exited(), "the server ended on SIGHUP");
    } finally {
      await server.stop();
    }
  });
}

Deno.test("memrep serve -t 2 refuses a port another server holds, which keeps serving", async () => {
  for (const other of [["-t", "1"], ["-t", "2"]]) {
    const first = await startMemrep(["serve", ...other]);
    try {
      const r = await runMemrep(["serve", "-l", "127.0.0.1", "-p", String(first.port), "-t", "2"]);
      equal(r.code, 2, r.stderr);
      match(r.stderr, new RegExp(`cannot listen on 127\\.0\\.0\\.1:${first.port}: .*in use`));
      const c = await connect(first.port);
      try {
        await c.send("set k 0 0 1\r\nv\r\nget k\r\n");
        equal(await c.readUntilText("END\r\n"), "STORED\r\nVALUE k 0 1\r\nv\r\nEND\r\n");
      } finally {
        await c.close();
      }
    } finally {
      await first.stop();
    }
  }
});

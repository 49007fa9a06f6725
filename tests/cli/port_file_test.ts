/**
 * memcached's MEMCACHED_PORT_FILENAME: once listening, the server writes the
 * ports it listens on to that file (written as `<file>.lck`, then renamed).
 * The file's text is compared with memcached's for the same flags, and
 * memcached's `-p -1` (a port the system picks) is found through it.
 */

import { equal, ok } from "../helpers/assert.ts";
import {
  connect,
  freePort,
  ignoreUnless,
  startMemcached,
  startMemrep,
  startProcess,
  waitForPort,
} from "../helpers/mod.ts";
import { memrepCommand } from "../helpers/process.ts";

async function waitForFile(path: string): Promise<string> {
  for (let i = 0; i < 200; i++) {
    try {
      return await Deno.readTextFile(path);
    } catch {
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  throw new Error(`${path} never appeared`);
}

const SAME = "MEMCACHED_PORT_FILENAME lists the listen ports as memcached does";
Deno.test({
  name: SAME,
  ignore: ignoreUnless(SAME, ["memcached"]),
  async fn() {
    const dir = await Deno.makeTempDir();
    try {
      const port = freePort();
      const ref = await startMemcached([], { env: { MEMCACHED_PORT_FILENAME: `${dir}/ref` } });
      const sut = await startMemrep(["serve", "-l", "127.0.0.1", "-p", String(port)], {
        env: { MEMCACHED_PORT_FILENAME: `${dir}/sut` },
      });
      try {
        const expected = (await waitForFile(`${dir}/ref`)).replace(String(ref.port), "<port>");
        const actual = (await waitForFile(`${dir}/sut`)).replace(String(port), "<port>");
        equal(actual, expected);
        equal(expected, "TCP INET: <port>\n");
      } finally {
        await Promise.all([ref.stop(), sut.stop()]);
      }
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test("-p -1 listens on a port the system picks, named in MEMCACHED_PORT_FILENAME", async () => {
  const dir = await Deno.makeTempDir();
  const file = `${dir}/ports`;
  const { cmd, args } = memrepCommand();
  const node = await startProcess(
    "memrep serve",
    cmd,
    [
      ...args,
      "serve",
      "-t",
      "1",
      "-l",
      "127.0.0.1",
      "-p",
      "-1",
    ],
    0,
    { env: { MEMCACHED_PORT_FILENAME: file } },
  );
  try {
    const text = await waitForFile(file);
    const m = /^TCP INET: (\d+)\n$/.exec(text);
    ok(m !== null, `port file: ${JSON.stringify(text)}`);
    const port = Number(m![1]);
    ok(port > 0 && port !== 11211, `port ${port}`);
    ok(await waitForPort(port, 5000), `port ${port} answers`);
    const c = await connect(port);
    try {
      equal(await c.request("version"), "VERSION 1.6.18\r\n");
    } finally {
      await c.close();
    }
  } finally {
    await node.stop();
    await Deno.remove(dir, { recursive: true });
  }
});

const UDP_PORT = "-U <n> without -p makes n the TCP port, as memcached does";
Deno.test({
  name: UDP_PORT,
  ignore: ignoreUnless(UDP_PORT, ["memcached"]),
  async fn() {
    const { cmd, args } = memrepCommand();
    for (const memcached of [true, false]) {
      const port = freePort();
      const argv = ["-t", "1", "-l", "127.0.0.1", "-U", String(port)];
      const node = memcached
        ? await startProcess("memcached", "memcached", ["-u", "root", ...argv], port)
        : await startProcess("memrep serve", cmd, [...args, "serve", ...argv], port);
      try {
        const c = await connect(port);
        try {
          equal(await c.request("version"), "VERSION 1.6.18\r\n");
        } finally {
          await c.close();
        }
      } finally {
        await node.stop();
      }
    }
  },
});

const UDP_FILE =
  "MEMCACHED_PORT_FILENAME lists the UDP ports after the TCP ones, as memcached does";
Deno.test({
  name: UDP_FILE,
  ignore: ignoreUnless(UDP_FILE, ["memcached"]),
  async fn() {
    const dir = await Deno.makeTempDir();
    const { cmd, args } = memrepCommand();
    try {
      const texts: string[] = [];
      for (const memcached of [true, false]) {
        const [port, udp] = [freePort(), freePort()];
        const file = `${dir}/${memcached ? "ref" : "sut"}`;
        // -U -1 too: a UDP port the system picks (issue_67.t).
        for (const u of [String(udp), "-1"]) {
          const argv = ["-t", "1", "-l", "127.0.0.1", "-p", String(port), "-U", u];
          const opts = { env: { MEMCACHED_PORT_FILENAME: file } };
          const node = memcached
            ? await startProcess("memcached", "memcached", ["-u", "root", ...argv], port, opts)
            : await startProcess("memrep serve", cmd, [...args, "serve", ...argv], port, opts);
          try {
            const text = await waitForFile(file);
            const m = /^TCP INET: (\d+)\nUDP INET: (\d+)\n$/.exec(text);
            ok(m !== null, `port file: ${JSON.stringify(text)}`);
            equal(Number(m![1]), port);
            if (u === "-1") ok(Number(m![2]) > 0 && Number(m![2]) !== port);
            else equal(Number(m![2]), udp);
            texts.push(text.replace(String(port), "<tcp>").replace(/UDP INET: \d+/, "UDP"));
          } finally {
            await node.stop();
            await Deno.remove(file).catch(() => {});
          }
        }
      }
      equal(texts.slice(2).join(""), texts.slice(0, 2).join(""));
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

/**
 * `stats settings` against memcached 1.6.18 started with the same flags:
 * the same names in the same order (memcached's extstore `ext_*` lines
 * aside: memrep has no extstore) and the same values, `tcpport` being each
 * server's own port. Tools read settings such as tcpport, inter and
 * slab_chunk_max from here.
 * @module
 */

import { connect, equal, ignoreUnless, startMemcached, startMemrep } from "../helpers/mod.ts";

const NAME = "stats settings lists memcached's settings in its order, with its values";

async function settings(port: number): Promise<[string, string][]> {
  const c = await connect(port);
  try {
    const text = await c.request("stats settings\r\n", "END\r\n");
    return text.split("\r\n").filter((l) => l.startsWith("STAT ")).map((l) => {
      const [, name, ...value] = l.split(" ");
      return [name, value.join(" ")];
    });
  } finally {
    await c.close();
  }
}

Deno.test({
  name: NAME,
  ignore: ignoreUnless(NAME, ["memcached"]),
  async fn() {
    const flags = ["-m", "32", "-c", "500", "-t", "2", "-R", "7", "-o", "slab_chunk_max=262144"];
    const ref = await startMemcached(flags);
    let sut;
    try {
      sut = await startMemrep(["serve", ...flags]);
      const expected = (await settings(ref.port)).filter(([n]) => !n.startsWith("ext_"))
        .map(([n, v]) => [n, n === "tcpport" ? "<port>" : v]);
      const actual = (await settings(sut.port))
        .map(([n, v]) => [n, n === "tcpport" && v === String(sut!.port) ? "<port>" : v]);
      equal(actual.map(([n]) => n).join(" "), expected.map(([n]) => n).join(" "));
      const differ = expected.filter(([n, v], i) => actual[i][1] !== v)
        .map(([n, v]) => `${n}: memcached ${v}, memrep ${actual.find(([m]) => m === n)?.[1]}`);
      equal(differ.join("\n"), "");
    } finally {
      await Promise.all([ref.stop(), sut?.stop()]);
    }
  },
});

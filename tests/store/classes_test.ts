/**
 * Slab class chunk sizes are memcached's, for any -f and -n: the classes
 * memcached 1.6.18 prints with -vv ("slab class N: chunk size S") against
 * slabClassSizes, so an item lands in the class memcached puts it in.
 */

import { deepEqual } from "../helpers/assert.ts";
import { binaryPath, ignoreUnless } from "../helpers/process.ts";
import { slabClassSizes } from "../../lib/store/slabs.ts";

/** The chunk sizes memcached reports at start with `args` (it exits at once: -V after -vv). */
async function memcachedClasses(args: string[]): Promise<number[]> {
  const user = Deno.uid() === 0 ? ["-u", "root"] : [];
  const p = new Deno.Command(binaryPath("memcached") as string, {
    args: [...user, "-l", "127.0.0.1", "-p", "0", "-U", "0", "-vv", ...args],
    stdout: "null",
    stderr: "piped",
  }).spawn();
  const sizes = [0];
  const reader = p.stderr.pipeThrough(new TextDecoderStream()).getReader();
  let text = "";
  while (!/slab class\s+\d+: chunk size\s+524288/.test(text)) {
    const { value, done } = await reader.read();
    if (done) break;
    text += value;
  }
  p.kill("SIGKILL");
  await p.status;
  await reader.cancel().catch(() => {});
  for (const m of text.matchAll(/slab class\s+(\d+): chunk size\s+(\d+)/g)) {
    sizes[Number(m[1])] = Number(m[2]);
  }
  return sizes;
}

const NAME = "slab classes have memcached's chunk sizes under -f and -n";

Deno.test({
  name: NAME,
  ignore: ignoreUnless(NAME, ["memcached"]),
  async fn() {
    for (const [f, n] of [[1.25, 48], [1.1, 48], [2, 48], [1.25, 16], [1.5, 100], [1.05, 8]]) {
      const theirs = await memcachedClasses(["-f", String(f), "-n", String(n)]);
      deepEqual(slabClassSizes(n, f), theirs, `-f ${f} -n ${n}`);
    }
  },
});

/**
 * Random differential: scripts drawn from the text/meta grammar
 * (random_scripts.ts) and from the binary one (random_binary_scripts.ts) go to
 * real memcached 1.6.18 and to memrep (serve, and the proxy in front of one
 * memcached); the normalised replies must be identical (differential.ts,
 * binary_differential.ts). A failing script is shrunk (steps dropped while it
 * still fails) and printed as a case to paste into differential_cases.ts.
 *
 * Each run takes a few fixed seeds and a few random ones (the seed is in the
 * step's name). A difference is run again before it fails the step: one that
 * does not replay is printed as a warning (memcached's own threads make some
 * replies racy, see `unreproduced`). Env: `MEMREP_SEEDS=N` runs N random seeds instead,
 * `MEMREP_CHAOS_SEED=s` replays seed s alone, `MEMREP_STEPS=n` sets the
 * script length (40), `DIFF_SHOW=1` prints every transcript.
 */

import { connect } from "../helpers/conn.ts";
import { ignoreUnless, type ProcessHandle, startMemcached, startMemrep } from "../helpers/mod.ts";
import { type Case, describeDiff, runCase, type Transcript } from "./differential.ts";
import { runBinCase, stepDiffs } from "./binary_differential.ts";
import {
  caseSource,
  type GenStep,
  KEY_SPACE,
  shrink,
  shrinkCandidates,
  type TextOptions,
  textScript,
  toCase,
} from "./random_scripts.ts";
import { binaryScript, binCaseSource, type BinCmd, toBinCase } from "./random_binary_scripts.ts";

const SERVER_ARGS = ["-m", "64", "-I", "1m"];
const FIXED_TEXT = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12];
const FIXED_BINARY = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10];

/** The seeds of this run: a replayed one, N random ones, or the fixed ones plus 3 random. */
function seeds(fixed: number[]): number[] {
  const replay = Deno.env.get("MEMREP_CHAOS_SEED");
  if (replay) return [Number(replay)];
  const random = () => Math.floor(Math.random() * 2 ** 31);
  const n = Deno.env.get("MEMREP_SEEDS");
  if (n) return Array.from({ length: Number(n) }, random);
  return [...fixed, random(), random(), random()];
}

function steps(): number {
  return Number(Deno.env.get("MEMREP_STEPS") ?? 40);
}

/**
 * A clean cache: the generators' keys deleted (a flushed item not yet
 * reclaimed comes back in memcached after a delayed flush_all), then flushed.
 */
async function flushAll(port: number): Promise<void> {
  const c = await connect(port);
  try {
    // Base64 where text cannot carry the key; memcached refuses a token over 250 bytes, though.
    const deletes = KEY_SPACE.map((k) =>
      btoa(k).length <= 250 ? `md ${btoa(k)} b q\r\n` : `delete ${k} noreply\r\n`
    ).join("");
    await c.send(`${deletes}mn\r\n`);
    await c.readUntilText("MN\r\n");
    const r = await c.request("flush_all");
    if (r !== "OK\r\n") throw new Error(`flush_all on ${port} answered ${JSON.stringify(r)}`);
  } finally {
    await c.close();
  }
}

/** `stats` values differ legitimately (pids, times, sizes): its names and order are compared. */
function maskStats(t: Transcript): void {
  t.normalised = t.normalised.map((s) =>
    s.replace(/STAT (\S+) [^\\]*\\r\\n/g, "STAT $1 <v>\\r\\n")
  );
}

/** Runs `c` on both; the rendered difference, or "" when the replies match. */
async function compareText(ref: number, sut: number, c: Case, who: string): Promise<string> {
  await Promise.all([flushAll(ref), flushAll(sut)]);
  const [e, a] = await Promise.all([runCase(ref, c), runCase(sut, c)]);
  maskStats(e);
  maskStats(a);
  const same = e.normalised.length === a.normalised.length &&
    e.normalised.every((x, i) => x === a.normalised[i]);
  const diff = describeDiff(c, e, a, "memcached", who);
  if (Deno.env.get("DIFF_SHOW")) console.log(diff);
  return same ? "" : diff;
}

async function textSeed(ref: number, sut: number, seed: number, o: TextOptions, who: string) {
  const script = textScript(seed, { ...o, steps: steps() });
  const name = `random text seed ${seed}`;
  const diff = await compareText(ref, sut, toCase(name, script), who);
  if (
    !diff || await unreproduced(seed, diff, () => compareText(ref, sut, toCase(name, script), who))
  ) {
    return;
  }
  const fails = async (s: GenStep[]) => (await compareText(ref, sut, toCase(name, s), who)) !== "";
  const small = await shrink(script, shrinkCandidates, fails);
  const smallCase = toCase(`${name} (shrunk)`, small);
  const smallDiff = await compareText(ref, sut, smallCase, who);
  const note = smallDiff
    ? ""
    : " (it passed when run once more: the difference above is the whole script's)";
  throw new Error(
    `replies differ (MEMREP_CHAOS_SEED=${seed})\n${smallDiff || diff}\n` +
      `minimal script${note}:\n${caseSource(smallCase)}`,
  );
}

/**
 * A difference the same script does not show again: memcached's own threads
 * hold items now and then (its LRU maintainer takes a reference to look at
 * one), so an incr next to them copies the item instead of padding it in
 * place. Printed, not failed; a real difference replays.
 */
async function unreproduced(seed: number, diff: string, again: () => Promise<string>) {
  if (await again()) return false;
  console.warn(`seed ${seed}: a difference that did not replay (a race in memcached?)\n${diff}`);
  return true;
}

async function withServers(
  start: () => Promise<[ProcessHandle, ProcessHandle[]]>,
  body: (ref: number, sut: number) => Promise<void>,
): Promise<void> {
  const [ref, sut] = await start();
  try {
    await body(ref.port, sut[0].port);
  } finally {
    for (const p of sut) await p.stop();
    await ref.stop();
  }
}

const TEXT_NAME = "random text/meta scripts: serve replies as memcached 1.6.18";
Deno.test({
  name: TEXT_NAME,
  ignore: ignoreUnless(TEXT_NAME, ["memcached"]),
  async fn(t) {
    await withServers(async () => [
      await startMemcached(SERVER_ARGS),
      [await startMemrep(["serve", "-U", "0", ...SERVER_ARGS])],
    ], async (ref, sut) => {
      for (const seed of seeds(FIXED_TEXT)) {
        await t.step(
          `seed ${seed}`,
          () => textSeed(ref, sut, seed, { stats: true, me: true }, "memrep"),
        );
      }
    });
  },
});

const PROXY_NAME = "random text/meta scripts: the proxy over one memcached replies as memcached";
Deno.test({
  name: PROXY_NAME,
  ignore: ignoreUnless(PROXY_NAME, ["memcached"]),
  async fn(t) {
    await withServers(async () => {
      const ref = await startMemcached(SERVER_ARGS);
      const backend = await startMemcached(SERVER_ARGS);
      const proxy = await startMemrep(["proxy", "-s", `127.0.0.1:${backend.port}`]);
      return [ref, [proxy, backend]];
    }, async (ref, sut) => {
      for (const seed of seeds(FIXED_TEXT.slice(0, 6))) {
        await t.step(
          `seed ${seed}`,
          () => textSeed(ref, sut, seed, { me: true, noQuietVivify: true }, "proxy"),
        );
      }
    });
  },
});

async function compareBinary(ref: number, sut: number, steps: GenStep<BinCmd>[]) {
  const c = toBinCase("random binary", steps);
  await Promise.all([flushAll(ref), flushAll(sut)]);
  const [e, a] = await Promise.all([runBinCase(ref, c), runBinCase(sut, c)]);
  return stepDiffs(e, a);
}

async function binarySeed(ref: number, sut: number, seed: number) {
  const script = binaryScript(seed, steps());
  const lines = await compareBinary(ref, sut, script);
  const again = async () => (await compareBinary(ref, sut, script)).join("\n");
  if (!lines.length || await unreproduced(seed, lines.join("\n"), again)) return;
  const fails = async (s: GenStep<BinCmd>[]) => (await compareBinary(ref, sut, s)).length > 0;
  const small = await shrink(script, shrinkCandidates, fails);
  const smallLines = await compareBinary(ref, sut, small);
  throw new Error(
    `replies differ (MEMREP_CHAOS_SEED=${seed})\n${
      (smallLines.length ? smallLines : lines).join("\n")
    }\n` +
      `minimal script:\n${binCaseSource(`random binary seed ${seed}`, small)}`,
  );
}

const BINARY_NAME = "random binary scripts: serve answers as memcached 1.6.18";
Deno.test({
  name: BINARY_NAME,
  ignore: ignoreUnless(BINARY_NAME, ["memcached"]),
  async fn(t) {
    await withServers(async () => [
      await startMemcached(SERVER_ARGS),
      [await startMemrep(["serve", "-U", "0", ...SERVER_ARGS])],
    ], async (ref, sut) => {
      for (const seed of seeds(FIXED_BINARY)) {
        await t.step(`seed ${seed}`, () => binarySeed(ref, sut, seed));
      }
    });
  },
});

const BINARY_PROXY_NAME =
  "random binary scripts: the proxy over one memcached answers as memcached";
Deno.test({
  name: BINARY_PROXY_NAME,
  ignore: ignoreUnless(BINARY_PROXY_NAME, ["memcached"]),
  async fn(t) {
    await withServers(async () => {
      const ref = await startMemcached(SERVER_ARGS);
      const backend = await startMemcached(SERVER_ARGS);
      const proxy = await startMemrep(["proxy", "-s", `127.0.0.1:${backend.port}`]);
      return [ref, [proxy, backend]];
    }, async (ref, sut) => {
      for (const seed of seeds(FIXED_BINARY.slice(0, 5))) {
        await t.step(`seed ${seed}`, () => binarySeed(ref, sut, seed));
      }
    });
  },
});

/**
 * A graceful stop (SIGINT/SIGTERM) drains replication, as repcached's own
 * t/rep/72-shutdown-sync.t expects: clients are closed first, then the peer
 * gets everything it has not acknowledged, bounded by --repl-drain-timeout.
 */

import { equal, ok } from "../helpers/assert.ts";
import { client, startNode, startPair } from "./pair.ts";
import { freePort } from "../helpers/mod.ts";

const MB = 1 << 20;

function randomValue(n: number): Uint8Array {
  const v = new Uint8Array(n);
  for (let i = 0; i < n; i += 65536) crypto.getRandomValues(v.subarray(i, i + 65536));
  return v;
}

/** SIGSTOP B, 10 x 1 MB sets on A (each STORED, each on its own connection), SIGINT A. */
async function writeToStoppedPeer(
  args: string[],
): Promise<
  {
    a: Awaited<ReturnType<typeof startPair>>["a"];
    b: Awaited<ReturnType<typeof startPair>>["b"];
    values: Map<string, Uint8Array>;
  }
> {
  // A long --repl-timeout: on a slow machine the writes must not outlast A's patience with B.
  const { a, b } = await startPair(["-I", "2m", "--repl-timeout", "8000", ...args]);
  const values = new Map<string, Uint8Array>();
  b.proc.kill("SIGSTOP");
  for (let i = 0; i < 10; i++) {
    const key = `big${i}`, value = randomValue(MB);
    values.set(key, value);
    // One connection per write: with serve threads, the writes land on every thread.
    const c = await client(a);
    try {
      ok(await c.set(key, value), `${key} STORED`);
    } finally {
      c.close();
    }
  }
  return { a, b, values };
}

async function missingOrDifferent(
  node: Awaited<ReturnType<typeof startNode>>,
  values: Map<string, Uint8Array>,
): Promise<string[]> {
  const c = await client(node);
  try {
    const bad: string[] = [];
    for (const [key, value] of values) {
      const got = await c.getOne(key);
      if (!got || got.value.length !== value.length || got.value.some((x, i) => x !== value[i])) {
        bad.push(key);
      }
    }
    return bad;
  } finally {
    c.close();
  }
}

Deno.test("shutdown-sync: SIGSTOP B, 10 x 1 MB on A, SIGINT A, SIGCONT B: B has 10 of 10 (threads or not)", async () => {
  for (const threads of ["1", "2", "2"]) {
    const { a, b, values } = await writeToStoppedPeer(["-t", threads, "--repl-timeout", "4000"]);
    try {
      const mark = a.proc.outputLines().length;
      a.proc.kill("SIGINT");
      await new Promise((r) => setTimeout(r, 500 + Math.random() * 500));
      b.proc.kill("SIGCONT");
      const st = await a.proc.status;
      equal(st.code, 0, `A exits 0 (-t ${threads})`);
      const bad = await missingOrDifferent(b, values);
      equal(bad.length, 0, `-t ${threads}: B lacks or differs on ${bad.join(", ")}`);
      ok(
        a.proc.outputLines().slice(mark).some((l) => l === "replication: cleanup complete"),
        a.proc.outputLines().slice(mark).join("\n"),
      );
    } finally {
      b.proc.kill("SIGCONT");
      await Promise.all([a.proc.stop(), b.proc.stop()]);
    }
  }
});

Deno.test("shutdown-sync: a peer that stays stopped: the drain gives up after --repl-drain-timeout and says what was left", async () => {
  const { a, b } = await writeToStoppedPeer(["--repl-drain-timeout", "1500"]);
  try {
    const mark = a.proc.outputLines().length;
    const t0 = performance.now();
    a.proc.kill("SIGTERM");
    const st = await a.proc.status;
    const took = performance.now() - t0;
    equal(st.code, 0);
    ok(took >= 1000, `waited for the peer (${Math.round(took)} ms)`);
    ok(took < 12_000, `gave up within the bound (${Math.round(took)} ms)`);
    const lines = a.proc.outputLines().slice(mark);
    const left = lines.find((l) => l.startsWith("replication: cleanup incomplete"));
    ok(left, lines.join("\n"));
    const m = /\(gave up after 1500 ms\): (\d+) bytes \((\d+) changes\)/.exec(left!);
    ok(m, left);
    ok(Number(m![1]) > 0 && Number(m![2]) >= 1 && Number(m![2]) <= 10, left);
    ok(!lines.includes("replication: cleanup complete"));
  } finally {
    b.proc.kill("SIGCONT");
    await Promise.all([a.proc.stop(), b.proc.stop()]);
  }
});

Deno.test("shutdown-sync: a node without a link stops at once and says what the peer never got", async () => {
  const a = await startNode(freePort());
  try {
    await a.proc.waitForLog(/^replication: listen$/);
    const c = await client(a);
    ok(await c.set("alone", new Uint8Array(10)));
    c.close();
    const mark = a.proc.outputLines().length;
    const t0 = performance.now();
    a.proc.kill("SIGINT");
    const st = await a.proc.status;
    equal(st.code, 0);
    ok(performance.now() - t0 < 8000, "no drain wait without a link");
    const lines = a.proc.outputLines().slice(mark);
    ok(
      lines.some((l) =>
        /^replication: cleanup incomplete \(no peer linked\): \d+ bytes \(1 changes\)/.test(l)
      ),
      lines.join("\n"),
    );
  } finally {
    await a.proc.stop();
  }
});

Deno.test("shutdown-sync: a second SIGINT ends the drain at once and says what was left", async () => {
  const { a, b } = await writeToStoppedPeer(["--repl-drain-timeout", "60000"]);
  try {
    const mark = a.proc.outputLines().length;
    a.proc.kill("SIGINT");
    await a.proc.waitForLog(/^replication: cleanup \(\d+ bytes to the peer\)$/, 10_000, mark);
    a.proc.kill("SIGINT");
    let timer: ReturnType<typeof setTimeout> | undefined;
    const late = new Promise<null>((r) => (timer = setTimeout(() => r(null), 15_000)));
    const st = await Promise.race([a.proc.status, late]);
    clearTimeout(timer);
    ok(st, "A exits after the second signal, long before --repl-drain-timeout");
    equal(st!.code, 0);
    const lines = a.proc.outputLines().slice(mark);
    ok(
      lines.some((l) => /^replication: cleanup incomplete \(interrupted\): \d+ bytes/.test(l)),
      lines.join("\n"),
    );
  } finally {
    b.proc.kill("SIGCONT");
    await Promise.all([a.proc.stop(), b.proc.stop()]);
  }
});

/**
 * `--replicate` with a list: repeatable or comma separated, this node named
 * by `--repl-listen` (or found among the addresses); mistakes exit 2 with
 * a message; `--repl-sync=quorum` is a mode.
 */

import { equal, match, ok } from "../helpers/assert.ts";
import { freePort, runMemrep, startMemrep, waitUntil } from "../helpers/mod.ts";
import { client, missingKeys, replStats } from "./pair.ts";
import { startGroup } from "./group.ts";

Deno.test("--replicate lists: which member this node is must be clear; mistakes exit 2", async () => {
  const [p1, p2, p3] = [freePort(), freePort(), freePort()];
  const list = `127.0.0.1:${p1},127.0.0.1:${p2},127.0.0.1:${p3}`;
  const port = ["-p", String(freePort())];
  const ambiguous = await runMemrep(["serve", ...port, "--replicate", list]);
  equal(ambiguous.code, 2);
  match(ambiguous.stderr, /cannot tell which member this node is .*--repl-listen/);
  const stranger = await runMemrep([
    "serve",
    ...port,
    "--replicate",
    list,
    "--repl-listen",
    "127.0.0.1:1",
  ]);
  equal(stranger.code, 2);
  match(stranger.stderr, /--repl-listen 127.0.0.1:1 is not one of the --replicate addresses/);
  const twice = await runMemrep([
    "serve",
    ...port,
    "--replicate",
    `127.0.0.1:${p1},127.0.0.1:${p1}`,
    "--repl-listen",
    `127.0.0.1:${p1}`,
  ]);
  equal(twice.code, 2);
  match(twice.stderr, /a member is listed twice/);
  const mode = await runMemrep([
    "serve",
    ...port,
    "--replicate",
    list,
    "--repl-listen",
    `127.0.0.1:${p1}`,
    "--repl-sync=most",
  ]);
  equal(mode.code, 2);
  match(mode.stderr, /unknown mode 'most' \(expected all or quorum\)/);
});

Deno.test("--replicate is repeatable; a member alone serves and shows the group (peers down)", async () => {
  const [p1, p2, p3] = [freePort(), freePort(), freePort()];
  const proc = await startMemrep([
    "serve",
    "-v",
    "--replicate",
    `127.0.0.1:${p1}`,
    "--replicate",
    `127.0.0.1:${p2},127.0.0.1:${p3}`,
    "--repl-listen",
    `127.0.0.1:${p2}`,
    "--repl-sync=quorum",
  ]);
  try {
    const s = await replStats({ proc, port: proc.port });
    equal(s.get("repl_group_size"), "3");
    equal(s.get("repl_group_self"), "1");
    equal(s.get("repl_group_up"), "1");
    equal(s.get("repl_sync_mode"), "quorum");
    equal(s.get("repl_link"), "down");
    equal(s.get("repl_peer_0_addr"), `127.0.0.1:${p1}`);
    equal(s.get("repl_peer_2_addr"), `127.0.0.1:${p3}`);
    match(s.get("repl_node_id") ?? "", /^[0-9a-f]{16}\.1$/);
  } finally {
    await proc.stop();
  }
});

Deno.test("a group with --repl-secret-file links and replicates (sealed links)", async () => {
  const file = await Deno.makeTempFile();
  await Deno.writeTextFile(file, "group-secret-0123456789\n");
  const g = await startGroup(3, ["--repl-secret-file", file]);
  try {
    const c = await client(g.nodes[2]);
    ok(await c.set("sealed", new TextEncoder().encode("v")));
    c.close();
    for (const node of g.nodes.slice(0, 2)) {
      await waitUntil(
        async () => (await missingKeys(node, ["sealed"])).length === 0,
        "the write to reach every member",
        10_000,
      );
    }
    equal((await replStats(g.nodes[0])).get("repl_auth_failures"), "0");
  } finally {
    await g.close();
    await Deno.remove(file);
  }
});

/**
 * `serve` flags for replication: repcached's -q is accepted, --repl-sync
 * takes an optional mode (unknown ones exit 2), --repl-secret on the command
 * line warns that ps shows it, and --help says so.
 */

import { equal, match, ok } from "../helpers/assert.ts";
import { freePort, runMemrep, startMemrep } from "../helpers/mod.ts";

const SECRET_WARNING = /--repl-secret is visible to every user of this host \(ps\)/;

Deno.test("serve accepts repcached's -q <n> and -q<n> (its replication queue length)", async () => {
  for (const q of [["-q", "8192"], ["-q128"]]) {
    const node = await startMemrep(
      ["serve", "-v", "-x", "127.0.0.1", "-X", String(freePort()), ...q],
    );
    try {
      await node.waitForLog(/^replication: listen$/, 10_000);
      await node.waitForLog(/^memrep: -q \d+ ignored/, 5000);
    } finally {
      await node.stop();
    }
  }
  const bad = await runMemrep(["serve", "-q", "lots", "-p", String(freePort())]);
  equal(bad.code, 2);
  match(bad.stderr, /not a number: lots/);
});

Deno.test("--repl-sync takes no mode or =all; anything else, or its options alone, exit 2", async () => {
  const repl = ["-x", "127.0.0.1", "-X", String(freePort()), "-p", String(freePort())];
  const unknown = await runMemrep(["serve", ...repl, "--repl-sync=quorum2"]);
  equal(unknown.code, 2);
  match(unknown.stderr, /--repl-sync: unknown mode 'quorum2'/);
  const degrade = await runMemrep(["serve", ...repl, "--repl-sync-degrade"]);
  equal(degrade.code, 2);
  match(degrade.stderr, /--repl-sync-degrade needs --repl-sync/);
  const alone = await runMemrep(["serve", "--repl-drain-timeout", "5"]);
  equal(alone.code, 2);
  match(alone.stderr, /--repl-drain-timeout needs --replicate/);
  for (const sync of [["--repl-sync"], ["--repl-sync=all"]]) {
    // A bare --repl-sync must not take the next flag as its value.
    const node = await startMemrep([
      "serve",
      "-v",
      "-x",
      "127.0.0.1",
      "-X",
      String(freePort()),
      ...sync,
      "--repl-sync-timeout",
      "300",
    ]);
    try {
      const c = await Deno.connect({ hostname: "127.0.0.1", port: node.port });
      await c.write(new TextEncoder().encode("stats replication\r\n"));
      let text = "";
      const buf = new Uint8Array(65536);
      while (!text.endsWith("END\r\n")) {
        const n = await c.read(buf);
        if (n === null) break;
        text += new TextDecoder().decode(buf.subarray(0, n));
      }
      c.close();
      match(text, /STAT repl_sync 1\r\n/);
      match(text, /STAT repl_sync_timeout_ms 300\r\n/);
    } finally {
      await node.stop();
    }
  }
});

Deno.test("--repl-secret on the command line warns on stderr; --help recommends the file or the variable", async () => {
  const node = await startMemrep(
    ["serve", "-x", "127.0.0.1", "-X", String(freePort()), "--repl-secret", "s3cret"],
  );
  try {
    await node.waitForLog(SECRET_WARNING, 5000);
    ok(node.stderrLines().some((l) => SECRET_WARNING.test(l)), "on stderr");
    ok(node.stderrLines().every((l) => !l.includes("s3cret")), "the warning does not repeat it");
  } finally {
    await node.stop();
  }
  const file = await Deno.makeTempFile();
  try {
    await Deno.writeTextFile(file, "s3cret\n");
    const quiet = await startMemrep(
      ["serve", "-x", "127.0.0.1", "-X", String(freePort()), "--repl-secret-file", file],
    );
    await quiet.stop();
    ok(!quiet.outputLines().some((l) => SECRET_WARNING.test(l)), "no warning for a file");
  } finally {
    await Deno.remove(file);
  }
  const help = await runMemrep(["serve", "--help"]);
  equal(help.code, 0);
  match(help.stdout, /--repl-secret <text> .*visible to every user in ps, prefer the above/);
  match(help.stdout, /--repl-secret-file <file>/);
  match(help.stdout, /MEMREP_REPL_SECRET/);
  match(help.stdout, /-q <num> .*accepted and ignored/);
  match(help.stdout, /--repl-drain-timeout <ms>/);
});

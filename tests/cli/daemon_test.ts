/**
 * `-d` re-runs the command in the background without its daemon flag; every
 * other argument, values included, must reach the background process intact.
 */

import { deepEqual } from "../helpers/assert.ts";
import { withoutDaemonFlag } from "../../lib/cli/daemon.ts";
import type { FlagSpec } from "../../lib/cli/flags.ts";

const SPEC: FlagSpec = {
  daemon: { type: "boolean", short: "d" },
  verbose: { type: "boolean", short: "v", multiple: true },
  pidfile: { type: "string", short: "P" },
  "repl-host": { type: "string", short: "x" },
};

Deno.test("withoutDaemonFlag drops -d, --daemon and the d of on/off groups, nothing else", () => {
  deepEqual(withoutDaemonFlag(["-v", "-d", "-l", "127.0.0.1"], SPEC), ["-v", "-l", "127.0.0.1"]);
  deepEqual(withoutDaemonFlag(["--daemon", "-p", "11211"], SPEC), ["-p", "11211"]);
  deepEqual(withoutDaemonFlag(["-vd", "-dvv", "-d"], SPEC), ["-v", "-vv"]);
  // Values attached to an option keep their d.
  deepEqual(
    withoutDaemonFlag(["-d", "-P/var/run/memrep.pid", "-xdb1.local", "-x", "db2"], SPEC),
    ["-P/var/run/memrep.pid", "-xdb1.local", "-x", "db2"],
  );
});

/**
 * lib/cli/flags.ts: getopt's forms (memcached's flags: `-c -1`, `-p11211`,
 * `-vv`, grouped switches) and node:util parseArgs's refusals, word for word.
 */

import { deepEqual, equal, throws } from "../helpers/assert.ts";
import { countFlag, type FlagSpec, listFlag, parseFlags, stringFlag } from "../../lib/cli/flags.ts";

const SPEC: FlagSpec = {
  port: { type: "string", short: "p" },
  conns: { type: "string", short: "c" },
  listen: { type: "string", short: "l", multiple: true },
  verbose: { type: "boolean", short: "v", multiple: true },
  daemon: { type: "boolean", short: "d" },
  json: { type: "boolean" },
  name: { type: "string" },
};

Deno.test("flags: getopt's forms", () => {
  const v = parseFlags(
    ["-p11211", "-c", "-1", "-dvv", "-l", "a", "--listen=b", "--name", "--x", "-vp", "7"],
    SPEC,
    "serve",
  );
  equal(stringFlag(v, "port"), "7"); // the last one
  equal(stringFlag(v, "conns"), "-1"); // a value may start with `-`
  equal(v.daemon, true);
  equal(countFlag(v, "verbose"), 3);
  deepEqual(listFlag(v, "listen"), ["a", "b"]);
  equal(stringFlag(v, "name"), "--x");
  equal(stringFlag(parseFlags(["--name="], SPEC, "serve"), "name"), "");
  deepEqual(parseFlags(["--"], SPEC, "serve"), {});
});

Deno.test("flags: refusals with node:util parseArgs's messages", () => {
  const refused = (args: string[], message: string) =>
    throws(() => parseFlags(args, SPEC, "serve"), { message: `memrep serve: ${message}` });
  refused(["--bogus"], "Unknown option '--bogus'");
  refused(["--bogus=1"], "Unknown option '--bogus'");
  refused(["-dz"], "Unknown option '-z'");
  refused(["-p"], "Option '-p, --port <value>' argument missing");
  refused(["--name", "--"], "Option '--name <value>' argument missing");
  refused(["--json=yes"], "Option '--json' does not take an argument");
  refused(
    ["stray"],
    "Unexpected argument 'stray'. This command does not take positional arguments",
  );
  refused(["--", "x"], "Unexpected argument 'x'. This command does not take positional arguments");
  refused(["-"], "Unexpected argument '-'. This command does not take positional arguments");
  refused(["--constructor"], "Unknown option '--constructor'");
});

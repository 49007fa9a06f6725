/**
 * memrep: one executable that makes memcached highly available.
 * This entry only dispatches to a subcommand in lib/cli/.
 * @module
 */

import { runMain } from "./lib/cli/mod.ts";

if (import.meta.main) Deno.exit(await runMain(Deno.args));

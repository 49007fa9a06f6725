/**
 * The `stats` family answered by the proxy itself.
 * @module
 */

import { ascii, REPLY, type Request } from "../../protocol/mod.ts";
import { agentStats, proxyStats } from "../stats.ts";
import type { ReplySink, RouterCore } from "./core.ts";

/** `stats`, `stats proxy`, other groups. */
export function statsCommand(core: RouterCore, req: Request, sink: ReplySink): void {
  if (req.ntokens === 1) {
    sink.reply(ascii(agentStats(core.servers, core.backups)));
  } else if (req.ntokens === 2 && req.tokenIs(1, "proxy")) {
    sink.reply(ascii(proxyStats(core.stats, core.servers, core.backups)));
  } else {
    sink.reply(REPLY.ERROR);
  }
}

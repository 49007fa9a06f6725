/**
 * The one pipelined memcached client: proxy backend connections,
 * `memrep replicate`, and tests.
 *
 * ```ts
 * import { Client } from "./mod.ts";
 * const c = await Client.connect("127.0.0.1", 11211, { requestTimeoutMs: 1000 });
 * await c.set("k", new TextEncoder().encode("v"), 5, 0);
 * const item = await c.getOne("k"); // { value, flags: 5 }
 * c.close();
 * ```
 * @module
 */

export { Client, type Item, type Key } from "./client.ts";
export { type ClientOptions, isUnixPath, serverName } from "./dial.ts";
export type { FrameHandler } from "./pipeline.ts";
export { ClientError, type ClientErrorCode, errorDetail, ReplyError } from "./errors.ts";
export { Reply, type ValueItem } from "./reply.ts";
export { type DumpEntry, NO_TTL, ReplyKind, type ReplyKindCode } from "../protocol/mod.ts";

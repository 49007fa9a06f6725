/**
 * Test helpers: assertions, free ports, process starters (memrep, memcached,
 * nutcracker), a raw TCP client and a fault-injecting relay.
 * @module
 */

export * from "./assert.ts";
export * from "./bytes.ts";
export * from "./burst.ts";
export * from "./conn.ts";
export * from "./fake_server.ts";
export * from "./ports.ts";
export * from "./random.ts";
export * from "./process.ts";
export * from "./relay.ts";
export * from "./pymemcache.ts";
export * from "./tls.ts";

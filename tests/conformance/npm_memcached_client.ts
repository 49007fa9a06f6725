/**
 * Run by npm_memcached_test.ts in its own process (the npm `memcached`
 * client throws from a socket callback on a version it cannot parse, which
 * ends its process): asks `version`, sets and gets a key, prints the
 * results as one JSON line.
 *
 *   deno run -A --unsafe-proto tests/conformance/npm_memcached_client.ts <port>
 * @module
 */

import Memcached from "npm:memcached@2.2.2";

const client = new Memcached(`127.0.0.1:${Deno.args[0]}`, { retries: 0, timeout: 3000 });

function call<T>(f: (cb: (err: unknown, value: T) => void) => void): Promise<T> {
  return new Promise((resolve, reject) => f((err, value) => err ? reject(err) : resolve(value)));
}

try {
  const version = await call<Array<{ version: string; major: string }>>((cb) => client.version(cb));
  await call((cb) => client.set("npm:memcached", "hello", 60, cb));
  const value = await call<string>((cb) => client.get("npm:memcached", cb));
  console.log(JSON.stringify({ version: version[0].version, major: version[0].major, value }));
} finally {
  client.end();
}

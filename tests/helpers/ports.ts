/**
 * Free loopback ports: bind port 0, read the port the kernel picked, close.
 * @module
 */

/** Ports handed out by this module instance (the kernel may give a just-closed port again). */
const handed = new Set<number>();

/**
 * Returns a TCP port on 127.0.0.1 that was free a moment ago and that this
 * test module has not handed out before: two servers started at once would
 * otherwise get the same port, and the one that lost the bind would look
 * started while the test talks to the other.
 */
export function freePort(): number {
  for (let attempt = 0;; attempt++) {
    const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const port = (l.addr as Deno.NetAddr).port;
    l.close();
    if (!handed.has(port) || attempt >= 100) {
      handed.add(port);
      return port;
    }
  }
}

/** Resolves true once `port` accepts a TCP connection, false after `timeoutMs`. */
export async function waitForPort(
  port: number,
  timeoutMs = 10_000,
  hostname = "127.0.0.1",
  stillAlive: () => boolean = () => true,
): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (!stillAlive()) return false;
    try {
      const c = await Deno.connect({ hostname, port });
      c.close();
      return true;
    } catch {
      await new Promise((r) => setTimeout(r, 25));
    }
  }
  return false;
}

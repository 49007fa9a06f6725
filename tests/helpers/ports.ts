/**
 * Free loopback ports: bind port 0, read the port the kernel picked, close.
 * @module
 */

/** Returns a TCP port on 127.0.0.1 that was free a moment ago. */
export function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
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

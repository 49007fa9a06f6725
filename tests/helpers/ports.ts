/**
 * Free loopback ports for test servers, unique across every test process
 * running at once.
 *
 * A port from the kernel's ephemeral range (bind port 0, close, hand it out)
 * can be taken again before the server binds it: by another test module
 * asking the same way, by a relay's own port-0 listen, or by any outgoing
 * connection. The server that loses the bind exits, while the port still
 * answers (the other owner): it looks started, and the test talks to a
 * stranger until that one closes. So ports come from below the ephemeral
 * range, which the kernel never picks by itself, each reserved by creating a
 * file exclusively in a shared directory; a reservation whose owner process
 * is gone may be taken over.
 * @module
 */

const DIR = `${Deno.env.get("TMPDIR") ?? "/tmp"}/memrep-test-ports`;
const FIRST = 20_000;
const LAST = ephemeralStart() - 1;

/** The first port of the kernel's ephemeral range (Linux), else 32768. */
function ephemeralStart(): number {
  try {
    const [low] = Deno.readTextFileSync("/proc/sys/net/ipv4/ip_local_port_range").trim().split(
      /\s+/,
    );
    const n = Number(low);
    return Number.isInteger(n) && n > FIRST + 1000 ? n : 32768;
  } catch {
    return 32768;
  }
}

/** True when the process that wrote a reservation is gone (its pid ended or was reused long after). */
function stale(path: string): boolean {
  try {
    const pid = Number(Deno.readTextFileSync(path).trim());
    const age = Date.now() - (Deno.statSync(path).mtime?.getTime() ?? 0);
    if (age > 3_600_000) return true;
    return !Number.isInteger(pid) || pid <= 0 || !exists(`/proc/${pid}`);
  } catch {
    return false;
  }
}

function exists(path: string): boolean {
  try {
    Deno.statSync(path);
    return true;
  } catch {
    return false;
  }
}

/** Claims `port` for this process: true when the reservation file was created by us. */
function claim(port: number): boolean {
  const path = `${DIR}/${port}`;
  for (let tries = 0; tries < 2; tries++) {
    try {
      Deno.writeTextFileSync(path, String(Deno.pid), { createNew: true });
      return true;
    } catch (err) {
      if (!(err instanceof Deno.errors.AlreadyExists)) throw err;
      if (tries > 0 || !stale(path)) return false;
      try {
        Deno.removeSync(path);
      } catch {
        // another process took it over first
      }
    }
  }
  return false;
}

/** True when nothing listens on (or holds) 127.0.0.1:`port` right now. */
function bindable(port: number): boolean {
  try {
    Deno.listen({ hostname: "127.0.0.1", port }).close();
    return true;
  } catch {
    return false;
  }
}

/**
 * Returns a TCP port on 127.0.0.1 that is free and that no other test
 * process (nor this one) has been handed: reserved until this process ends.
 */
export function freePort(): number {
  Deno.mkdirSync(DIR, { recursive: true });
  const span = LAST - FIRST + 1;
  const start = Math.floor(Math.random() * span);
  for (let i = 0; i < span; i++) {
    const port = FIRST + (start + i) % span;
    if (claim(port) && bindable(port)) return port;
  }
  throw new Error(`no free test port in ${FIRST}-${LAST}`);
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

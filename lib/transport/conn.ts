/**
 * Socket chores every connection shares: writing a whole buffer, telling a
 * peer that went away from a real error, closing without caring whether it
 * is closed already.
 * @module
 */

/** Write every byte (Deno writes may be partial). */
export async function writeAll(conn: Deno.Conn, data: Uint8Array): Promise<void> {
  let off = 0;
  while (off < data.length) off += await conn.write(data.subarray(off));
}

/** Errors that just mean the peer went away. */
export function isDisconnect(err: unknown): boolean {
  return err instanceof Deno.errors.ConnectionReset || err instanceof Deno.errors.BrokenPipe ||
    err instanceof Deno.errors.BadResource || err instanceof Deno.errors.Interrupted ||
    err instanceof Deno.errors.NotConnected || err instanceof Deno.errors.ConnectionAborted;
}

/** Close a connection or listener that may be closed already. */
export function closeQuietly(resource: { close(): void }): void {
  try {
    resource.close();
  } catch {
    // already closed
  }
}

/** The message of an error, or the thrown value as text. */
export function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** A "host:port" address. */
export interface HostPort {
  /** Host name or IP. */
  host: string;
  /** TCP port. */
  port: number;
}

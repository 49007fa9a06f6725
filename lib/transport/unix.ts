/**
 * Unix-domain socket listeners, shared by `serve -s` and the proxy's
 * `--unix` / nutcracker `listen: /path`.
 * @module
 */

import { closeQuietly } from "./conn.ts";

/**
 * Binds the unix-domain socket `path`, with permission bits `mode` (undefined:
 * the umask's, as nutcracker leaves them without a mode). A socket file left
 * there (by a server that is gone) is replaced; any other file is not (the
 * bind then fails: address in use), unlike nutcracker, which unlinks whatever
 * is at the path.
 */
export function listenUnix(path: string, mode?: number): Deno.UnixListener {
  let other = false;
  try {
    if (Deno.lstatSync(path).isSocket) Deno.removeSync(path);
    else other = true;
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) throw err;
  }
  if (other) throw new Deno.errors.AddrInUse(`${path} exists and is not a socket (left in place)`);
  // Bound under a private name, given its mode, then moved into place: a client never finds the
  // socket with the umask's bits instead of the asked ones (memcached sets its umask before bind),
  // and closing the listener (Deno unlinks the path it bound) leaves the file at `path` alone, as
  // nutcracker and memcached do: a listener that replaced it there (a reload) keeps its socket.
  // A private name that does not fit binds in place.
  if (!exists(path)) {
    const slash = path.lastIndexOf("/");
    const tmp = `${path.slice(0, slash + 1)}.memrep-${Deno.pid}.sock`;
    let listener: Deno.UnixListener | undefined;
    try {
      if (exists(tmp)) Deno.removeSync(tmp);
      listener = Deno.listen({ transport: "unix", path: tmp });
      if (mode !== undefined) Deno.chmodSync(tmp, mode & 0o777);
      Deno.renameSync(tmp, path);
      return listener;
    } catch {
      if (listener) closeQuietly(listener);
      try {
        Deno.removeSync(tmp);
      } catch { /* not there */ }
    }
  }
  const listener = Deno.listen({ transport: "unix", path });
  if (mode === undefined) return listener;
  try {
    Deno.chmodSync(path, mode & 0o777);
  } catch (err) {
    closeQuietly(listener);
    throw err;
  }
  return listener;
}

function exists(path: string): boolean {
  try {
    Deno.lstatSync(path);
    return true;
  } catch {
    return false;
  }
}

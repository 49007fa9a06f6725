/**
 * Password files, read by memcached's rules: the `-Y` auth file (loaded
 * once, `user:password` lines) and the SASL password database named by
 * `MEMCACHED_SASL_PWDB` (searched on every attempt). Passwords are bytes
 * and are compared in constant time.
 * @module
 */

/** One `user:password` entry, as bytes. */
export interface Credential {
  /** The user name (before the first ':'). */
  user: Uint8Array;
  /** The password (after the first ':', up to '\r' or the end of the line). */
  pass: Uint8Array;
}

/** What {@linkcode parseAuthFile} found. */
export type AuthFileParse =
  | { ok: true; entries: Credential[] }
  | { ok: false; line: number; reason: string };

/** memcached reads password lines with a 256-byte fgets buffer. */
export const MAX_ENTRY_LENGTH = 255;

const NL = 10, CR = 13, COLON = 58, NUL = 0;

/**
 * Parse a `-Y` auth file as memcached's authfile_load does: every line is
 * `user:password`; the user ends at the first ':', the password at '\r' or
 * the end of the line (a ':' inside it is part of it); nothing is trimmed,
 * there are no comments, and a line without ':' (a blank line too) makes the
 * whole file malformed. An empty file has no users. A NUL byte in a
 * password ends the file, as in memcached. Two deliberate differences: a
 * line longer than 255 bytes is refused (memcached silently cuts it and
 * stops reading), and entries after the 8th are kept (memcached silently
 * drops them).
 */
export function parseAuthFile(bytes: Uint8Array): AuthFileParse {
  const entries: Credential[] = [];
  let start = 0, line = 0;
  while (start < bytes.length) {
    line++;
    let end = bytes.indexOf(NL, start);
    if (end < 0) end = bytes.length;
    if (end - start > MAX_ENTRY_LENGTH) {
      return { ok: false, line, reason: `longer than ${MAX_ENTRY_LENGTH} bytes` };
    }
    let colon = -1;
    for (let i = start; i < end; i++) {
      const c = bytes[i];
      if (c === NUL) return { ok: false, line, reason: "NUL byte in the user name" };
      if (c === COLON) {
        colon = i;
        break;
      }
    }
    if (colon < 0) return { ok: false, line, reason: "no ':'" };
    let passEnd = colon + 1;
    while (passEnd < end && bytes[passEnd] !== CR && bytes[passEnd] !== NUL) passEnd++;
    entries.push({ user: bytes.slice(start, colon), pass: bytes.slice(colon + 1, passEnd) });
    if (passEnd < end && bytes[passEnd] === NUL) break;
    start = end + 1;
  }
  return { ok: true, entries };
}

/** True when a and b hold the same bytes; the time taken does not depend on where they differ. */
export function constantTimeEqual(a: Uint8Array, b: Uint8Array): boolean {
  const n = Math.max(a.length, b.length);
  let diff = a.length ^ b.length;
  for (let i = 0; i < n; i++) diff |= (a[i] ?? 0) ^ (b[i] ?? 0);
  return diff === 0;
}

/** True when some entry has exactly this user and password (every entry is compared). */
export function checkCredentials(
  entries: readonly Credential[],
  user: Uint8Array,
  pass: Uint8Array,
): boolean {
  let ok = false;
  for (const e of entries) {
    // `&` (not `&&`): both halves are compared for every entry.
    if (Number(constantTimeEqual(user, e.user)) & Number(constantTimeEqual(pass, e.pass))) {
      ok = true;
    }
  }
  return ok;
}

/**
 * memcached's SASL password database check (sasl_server_userdb_checkpass):
 * the first line that starts with `user:` decides; the password matches when
 * the following bytes equal it and then come ':', '\r', '\n' or the end of
 * the line (so `user:pass:anything` works). Lines are read 255 bytes at a
 * time, and user plus password longer than 252 bytes always fail.
 */
export function checkPwdb(db: Uint8Array, user: Uint8Array, pass: Uint8Array): boolean {
  if (user.length + pass.length > MAX_ENTRY_LENGTH + 1 - 4) return false;
  let start = 0;
  while (start < db.length) {
    // fgets: up to and including '\n', at most 255 bytes.
    let end = db.indexOf(NL, start);
    end = end < 0 ? db.length : end + 1;
    if (end - start > MAX_ENTRY_LENGTH) end = start + MAX_ENTRY_LENGTH;
    const line = db.subarray(start, end);
    start = end;
    if (line.length <= user.length || line[user.length] !== COLON) continue;
    if (!constantTimeEqual(line.subarray(0, user.length), user)) continue;
    const p = user.length + 1;
    if (line.length < p + pass.length) return false;
    const ok = constantTimeEqual(line.subarray(p, p + pass.length), pass);
    const next = p + pass.length < line.length ? line[p + pass.length] : NUL;
    return ok && (next === COLON || next === NL || next === CR || next === NUL);
  }
  return false;
}

/**
 * The one place tests import assertions from. Backed by `node:assert/strict`
 * because JSR (@std/assert) is unreachable here; swap the re-exports to move.
 * @module
 */

import { deepEqual } from "node:assert/strict";
import { isDeepStrictEqual } from "node:util";

export {
  deepEqual,
  equal,
  fail,
  match,
  notDeepEqual,
  notEqual,
  ok,
  rejects,
  throws,
} from "node:assert/strict";

import { AssertionError } from "node:assert/strict";
import { escapeBytes } from "./bytes.ts";

/**
 * Byte-exact equality with a readable failure: both sides are shown escaped
 * (`\r\n`, `\xNN`) so protocol diffs are visible in the test output.
 */
export function equalBytes(
  actual: Uint8Array | string,
  expected: Uint8Array | string,
  message?: string,
): void {
  const a = escapeBytes(actual);
  const e = escapeBytes(expected);
  if (a !== e) {
    throw new AssertionError({
      message: `${message ?? "bytes differ"}\n  actual:   ${a}\n  expected: ${e}`,
      actual: a,
      expected: e,
      operator: "equalBytes",
    });
  }
}

/**
 * Polls `check` until it returns true; throws naming `what` after
 * `timeoutMs`. Tests wait for effects this way, never with a fixed sleep.
 */
export async function waitUntil(
  check: () => Promise<boolean> | boolean,
  what: string,
  timeoutMs = 10_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/**
 * Polls `read` until its result deep-equals `expected`; after `timeoutMs`
 * fails with the last result, as `deepEqual` would.
 */
export async function eventually<T>(
  read: () => Promise<T>,
  expected: T,
  message?: string,
  timeoutMs = 10_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const got = await read();
    if (isDeepStrictEqual(got, expected)) return;
    if (Date.now() > deadline) return deepEqual(got, expected, message);
    await new Promise((r) => setTimeout(r, 20));
  }
}

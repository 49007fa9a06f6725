/**
 * The one place tests import assertions from. Backed by `node:assert/strict`
 * because JSR (@std/assert) is unreachable here; swap the re-exports to move.
 * @module
 */

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

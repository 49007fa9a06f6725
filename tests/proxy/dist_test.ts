/** nutcracker's hash_tag rule and the random distribution. */

import { deepEqual, equal } from "../helpers/assert.ts";
import { parseConfig, poolDistribution, tagged } from "../../lib/proxy/mod.ts";

function enc(s: string) {
  return new TextEncoder().encode(s);
}

Deno.test("hash_tag: the text between the first open and the next close, if not empty", () => {
  const brace = { open: 123, close: 125 };
  const cases: [string, string][] = [
    ["user{42}:name", "42"],
    ["{a}{b}", "a"],
    ["{}x", "{}x"], // empty tag: whole key
    ["a{b", "a{b"], // not closed
    ["x}{y}", "y"], // a close before the open does not count
    ["{{a}}", "{a"],
    ["plain", "plain"],
    ["", ""],
  ];
  for (const [key, want] of cases) {
    // Inside a larger buffer: offsets must stay within the key.
    const buf = enc(`}}${key}{z}`);
    const [s, e] = tagged(buf, 2, 2 + key.length, brace);
    equal(new TextDecoder().decode(buf.subarray(s, e)), want, key);
  }
  const colon = { open: 58, close: 58 }; // hash_tag "::"
  const buf = enc("a:b:c");
  deepEqual(tagged(buf, 0, buf.length, colon), [2, 3]);
});

Deno.test("distribution random: every server is used, whatever the key", () => {
  const c = parseConfig(
    "p:\n  listen: 127.0.0.1:1\n  distribution: random\n  servers:\n" +
      "   - a:1:1\n   - b:1:5\n   - c:1:1\n",
  )[0];
  const d = poolDistribution(c);
  const seen = new Set<number>();
  const key = enc("same-key");
  for (let i = 0; i < 1000; i++) seen.add(d.pick(key, 0, key.length));
  deepEqual([...seen].sort(), [0, 1, 2]);
});

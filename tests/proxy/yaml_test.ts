/** The strict YAML subset reader behind `memrep proxy -c`. */

import { deepEqual, equal, throws } from "../helpers/assert.ts";
import { parseYaml, YamlError } from "../../lib/proxy/mod.ts";

/** Maps to plain objects, for comparison. */
function plain(v: unknown): unknown {
  if (v instanceof Map) return Object.fromEntries([...v].map(([k, x]) => [k, plain(x)]));
  if (Array.isArray(v)) return v.map(plain);
  return v;
}

Deno.test("yaml: nutcracker's shapes (comments, quotes, sequences at the key's indent, flow lists)", () => {
  const text = [
    "--- # a document marker is fine",
    "alpha:   # pool",
    "  listen: 127.0.0.1:22121",
    '  hash_tag: "{}"',
    "  name: 'it''s # not a comment'",
    '  esc: "a\\tb\\x41"',
    "  servers:",
    "  - 127.0.0.1:11211:1 one",
    "  -   127.0.0.1:11212:1",
    "  list: [a, 'b c', \"d\"]",
    "  empty:",
    "beta:",
    "  servers:",
    "    - x:1:1#no-comment-inside-a-word",
    "",
  ].join("\n");
  deepEqual(plain(parseYaml(text)), {
    alpha: {
      listen: "127.0.0.1:22121",
      hash_tag: "{}",
      name: "it's # not a comment",
      esc: "a\tbA",
      servers: ["127.0.0.1:11211:1 one", "127.0.0.1:11212:1"],
      list: ["a", "b c", "d"],
      empty: "",
    },
    beta: { servers: ["x:1:1#no-comment-inside-a-word"] },
  });
  deepEqual(plain(parseYaml("# only comments\n\n")), {});
});

Deno.test("yaml: anything outside the subset is an error naming the line", () => {
  const bad: [string, number][] = [
    ["a: &anchor x\n", 1],
    ["a: *alias\n", 1],
    ["a: !tag x\n", 1],
    ["a: |\n  block\n", 1],
    ["a: {b: c}\n", 1],
    ["a: 1\na: 2\n", 2],
    ["a:\n\tb: 1\n", 2],
    ["a: 'open\n", 1],
    ["a:\n  b: 1\n   c: 2\n", 3],
    ["a: [x, [y]]\n", 1],
    ["a: b: c\n", 1],
    ["just a scalar line\nb: 1\n", 1],
    ["---\na: 1\n---\nb: 2\n", 3],
  ];
  for (const [text, line] of bad) {
    throws(() => parseYaml(text), (e: unknown) => {
      equal(e instanceof YamlError, true, `${JSON.stringify(text)}: ${e}`);
      equal((e as YamlError).line, line, `${JSON.stringify(text)}: ${e}`);
      return true;
    });
  }
});

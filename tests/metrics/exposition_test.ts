/**
 * The text-format writer against the strict parser, and the parser's
 * refusals (so the scrape tests' parse means something).
 */

import { deepEqual as assertEquals, throws } from "../helpers/mod.ts";
import { Histogram, MetricsText } from "../../lib/metrics/mod.ts";
import { parsePrometheus, sampleValue } from "./prom_parser.ts";

Deno.test("exposition: label values with backslash, quote and newline round-trip", () => {
  const m = new MetricsText();
  const nasty = 'a\\b"c\nd}{,=';
  m.gauge("memrep_test_gauge", "help with \\ and\nnewline", [
    { labels: { peer: nasty }, value: 1.5 },
    { labels: { peer: "plain" }, value: -2 },
  ]);
  m.counter("memrep_test_total", "a counter", 7);
  const families = parsePrometheus(m.text());
  assertEquals(families.get("memrep_test_gauge")?.help, "help with \\ and\nnewline");
  assertEquals(sampleValue(families, "memrep_test_gauge", { peer: nasty }), 1.5);
  assertEquals(sampleValue(families, "memrep_test_gauge", { peer: "plain" }), -2);
  assertEquals(sampleValue(families, "memrep_test_total"), 7);
});

Deno.test("exposition: histogram buckets are cumulative and +Inf equals _count", () => {
  const h = new Histogram([0.001, 0.01, 0.1]);
  const seed = Math.floor(Math.random() * 1e9);
  let x = seed;
  const values: number[] = [];
  for (let i = 0; i < 500; i++) {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    values.push((x % 300_000) / 1e6); // 0 .. 0.3 s, some above every bound
  }
  for (const v of values) h.observe(v);
  const m = new MetricsText();
  m.histogram("memrep_test_seconds", "latency", [{ labels: { command: "get" }, histogram: h }]);
  const families = parsePrometheus(m.text()); // checks monotonicity and +Inf == _count
  for (const le of ["0.001", "0.01", "0.1", "+Inf"]) {
    const bound = le === "+Inf" ? Infinity : Number(le);
    assertEquals(
      sampleValue(families, "memrep_test_seconds_bucket", { command: "get", le }),
      values.filter((v) => v <= bound).length,
      `seed ${seed} le ${le}`,
    );
  }
  assertEquals(sampleValue(families, "memrep_test_seconds_count", { command: "get" }), 500);
});

Deno.test("exposition: a family written twice or a bad name is a bug, refused", () => {
  const m = new MetricsText();
  m.gauge("memrep_x", "x", 1);
  throws(() => m.gauge("memrep_x", "x", 2));
  throws(() => m.gauge("memrep-bad", "x", 2));
  throws(() => m.gauge("memrep_y", "x", [{ labels: { "bad-label": "v" }, value: 1 }]));
});

Deno.test("prometheus parser: refuses what the text format forbids", () => {
  const ok = "# TYPE a counter\na 1\n";
  parsePrometheus(ok);
  const bad = [
    "a 1\n", // no TYPE
    "# TYPE a counter\na 1", // no final newline
    "# TYPE a counter\na 1\na 2\n", // duplicate series
    "# TYPE a counter\n# TYPE a counter\na 1\n", // TYPE twice
    "# TYPE a counter\na -1\n", // negative counter
    '# TYPE a gauge\na{x="\\q"} 1\n', // bad escape
    '# TYPE a gauge\na{x="1",x="2"} 1\n', // label twice
    '# TYPE a gauge\na{x="1} 1\n', // unterminated
    "# TYPE a gauge\na one\n", // bad value
    "# TYPE a gauge\n# TYPE b gauge\nb 1\na 1\n", // not contiguous
    "# TYPE 1a gauge\n1a 1\n", // bad name
    "# TYPE a gauge\na 1\r\n", // CR
    '# TYPE h histogram\nh_bucket{le="1"} 2\nh_bucket{le="+Inf"} 1\nh_sum 1\nh_count 1\n',
    '# TYPE h histogram\nh_bucket{le="1"} 1\nh_sum 1\nh_count 1\n', // no +Inf
    '# TYPE h histogram\nh_bucket{le="+Inf"} 2\nh_sum 1\nh_count 3\n', // +Inf != count
  ];
  for (const text of bad) throws(() => parsePrometheus(text), Error, text);
});

Deno.test("exposition: a series listed twice in a family (same backend twice) is written once", () => {
  const m = new MetricsText();
  m.gauge("memrep_up", "up", [
    { labels: { backend: "h:1" }, value: 1 },
    { labels: { backend: "h:1" }, value: 1 },
    { labels: { backend: "h:2" }, value: 0 },
  ]);
  const families = parsePrometheus(m.text()); // throws on a duplicate series
  assertEquals(families.get("memrep_up")?.samples.length, 2);
});

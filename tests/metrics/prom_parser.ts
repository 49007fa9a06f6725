/**
 * A strict parser of Prometheus' text exposition format (0.0.4) for the
 * metrics tests: it throws on anything the format forbids, and on what this
 * project promises on top (a TYPE before every family's samples).
 * @module
 */

import { waitForPort } from "../helpers/mod.ts";

/** One parsed sample. */
export interface PromSample {
  /** Sample name (with `_bucket`, `_sum`, `_count` for histograms). */
  name: string;
  /** Label pairs. */
  labels: Record<string, string>;
  /** The value. */
  value: number;
}

/** One metric family. */
export interface PromFamily {
  /** Family name. */
  name: string;
  /** counter, gauge, histogram, summary or untyped. */
  type: string;
  /** HELP text (unescaped), if given. */
  help?: string;
  /** Its samples, in order. */
  samples: PromSample[];
}

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
const FLOAT = /^[+-]?(?:\d+\.?\d*(?:[eE][+-]?\d+)?|\.\d+(?:[eE][+-]?\d+)?|Inf|NaN)$/;
const TYPES = new Set(["counter", "gauge", "histogram", "summary", "untyped"]);

/** Parse `text`; throws an Error naming the line on any violation. */
export function parsePrometheus(text: string): Map<string, PromFamily> {
  if (text.length > 0 && !text.endsWith("\n")) throw new Error("text does not end with a newline");
  if (text.includes("\r")) throw new Error("carriage return in exposition text");
  const families = new Map<string, PromFamily>();
  const finished = new Set<string>();
  const series = new Set<string>();
  let current: string | undefined;
  const lines = text.split("\n");
  lines.pop();
  const enter = (family: string, n: number) => {
    if (current === family) return;
    if (finished.has(family)) throw new Error(`line ${n}: family ${family} is not contiguous`);
    if (current !== undefined) finished.add(current);
    current = family;
  };
  for (const [i, line] of lines.entries()) {
    const n = i + 1;
    if (line.startsWith("#")) {
      const m = /^#\s+(HELP|TYPE)\s+(\S+)(?:\s(.*))?$/.exec(line);
      if (!m) continue; // a plain comment
      const [, kind, name, rest = ""] = m;
      if (!METRIC_NAME.test(name)) throw new Error(`line ${n}: bad metric name ${name}`);
      enter(name, n);
      let f = families.get(name);
      if (kind === "TYPE") {
        if (!TYPES.has(rest)) throw new Error(`line ${n}: bad type ${rest}`);
        if (f?.type) throw new Error(`line ${n}: second TYPE for ${name}`);
        if (f && f.samples.length > 0) throw new Error(`line ${n}: TYPE after samples of ${name}`);
        if (f) f.type = rest;
        else families.set(name, f = { name, type: rest, samples: [] });
      } else {
        if (f?.help !== undefined) throw new Error(`line ${n}: second HELP for ${name}`);
        const help = unescape(rest, false, n);
        if (f) f.help = help;
        else families.set(name, f = { name, type: "", help, samples: [] });
      }
      continue;
    }
    if (line.trim() === "") throw new Error(`line ${n}: empty line`);
    const sample = parseSample(line, n);
    const family = familyOf(sample.name, families);
    if (family === undefined || family.type === "") {
      throw new Error(`line ${n}: sample ${sample.name} before its TYPE`);
    }
    enter(family.name, n);
    const key = sample.name + JSON.stringify(Object.entries(sample.labels).sort());
    if (series.has(key)) throw new Error(`line ${n}: duplicate series ${line}`);
    series.add(key);
    if (family.type === "counter" && !(sample.value >= 0)) {
      throw new Error(`line ${n}: counter ${sample.name} is ${sample.value}`);
    }
    family.samples.push(sample);
  }
  for (const f of families.values()) {
    if (f.type === "") throw new Error(`HELP without TYPE for ${f.name}`);
    if (f.type === "histogram") checkHistogram(f);
  }
  return families;
}

/** The family a sample belongs to: its own name, or a histogram's/summary's base. */
function familyOf(name: string, families: Map<string, PromFamily>): PromFamily | undefined {
  const own = families.get(name);
  if (own && own.type !== "histogram") return own;
  for (const suffix of ["_bucket", "_sum", "_count"]) {
    if (!name.endsWith(suffix)) continue;
    const base = families.get(name.slice(0, -suffix.length));
    if (base && (base.type === "histogram" || (base.type === "summary" && suffix !== "_bucket"))) {
      return base;
    }
  }
  return own && own.type !== "histogram" ? own : undefined;
}

function parseSample(line: string, n: number): PromSample {
  const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)/.exec(line);
  if (!m) throw new Error(`line ${n}: bad sample name: ${line}`);
  const name = m[1];
  let p = name.length;
  const labels: Record<string, string> = {};
  if (line[p] === "{") {
    p++;
    for (;;) {
      if (line[p] === "}") {
        p++;
        break;
      }
      const lm = /^[a-zA-Z_][a-zA-Z0-9_]*/.exec(line.slice(p));
      if (!lm || !LABEL_NAME.test(lm[0])) throw new Error(`line ${n}: bad label name: ${line}`);
      const label = lm[0];
      p += label.length;
      if (line[p] !== "=" || line[p + 1] !== '"') throw new Error(`line ${n}: bad label: ${line}`);
      p += 2;
      let raw = "";
      for (;;) {
        const c = line[p];
        if (c === undefined) throw new Error(`line ${n}: unterminated label value: ${line}`);
        if (c === '"') break;
        if (c === "\\") {
          raw += c + (line[p + 1] ?? "");
          p += 2;
          continue;
        }
        raw += c;
        p++;
      }
      p++; // closing quote
      if (label in labels) throw new Error(`line ${n}: label ${label} twice: ${line}`);
      labels[label] = unescape(raw, true, n);
      if (line[p] === ",") p++;
      else if (line[p] !== "}") throw new Error(`line ${n}: expected , or }: ${line}`);
    }
  }
  if (line[p] !== " ") throw new Error(`line ${n}: expected a space before the value: ${line}`);
  const fields = line.slice(p + 1).split(" ");
  if (fields.length < 1 || fields.length > 2 || !FLOAT.test(fields[0])) {
    throw new Error(`line ${n}: bad value: ${line}`);
  }
  if (fields.length === 2 && !/^-?\d+$/.test(fields[1])) {
    throw new Error(`line ${n}: bad timestamp: ${line}`);
  }
  const v = fields[0].replace(/Inf$/, "Infinity");
  return { name, labels, value: Number(v) };
}

/** Undo the format's escapes (`\\`, `\n`, and `\"` in label values); others are errors. */
function unescape(s: string, label: boolean, n: number): string {
  return s.replace(/\\(.?)/g, (_, c: string) => {
    if (c === "\\") return "\\";
    if (c === "n") return "\n";
    if (c === '"' && label) return '"';
    throw new Error(`line ${n}: bad escape \\${c}`);
  });
}

function checkHistogram(f: PromFamily): void {
  const groups = new Map<string, { buckets: [number, number][]; sum?: number; count?: number }>();
  for (const s of f.samples) {
    const { le, ...rest } = s.labels;
    const key = JSON.stringify(Object.entries(rest).sort());
    let g = groups.get(key);
    if (!g) groups.set(key, g = { buckets: [] });
    if (s.name === `${f.name}_bucket`) {
      if (le === undefined) throw new Error(`${f.name}: bucket without le`);
      if (!FLOAT.test(le)) throw new Error(`${f.name}: bad le ${le}`);
      g.buckets.push([Number(le.replace(/Inf$/, "Infinity")), s.value]);
    } else if (le !== undefined) throw new Error(`${s.name}: le outside a bucket`);
    else if (s.name === `${f.name}_sum`) g.sum = s.value;
    else if (s.name === `${f.name}_count`) g.count = s.value;
  }
  for (const [key, g] of groups) {
    if (g.sum === undefined || g.count === undefined) {
      throw new Error(`${f.name}${key}: _sum or _count missing`);
    }
    for (let i = 1; i < g.buckets.length; i++) {
      if (!(g.buckets[i][0] > g.buckets[i - 1][0])) {
        throw new Error(`${f.name}${key}: bucket bounds not ascending`);
      }
      if (g.buckets[i][1] < g.buckets[i - 1][1]) {
        throw new Error(`${f.name}${key}: bucket counts decrease`);
      }
    }
    const last = g.buckets.at(-1);
    if (!last || last[0] !== Infinity) throw new Error(`${f.name}${key}: no +Inf bucket`);
    if (last[1] !== g.count) throw new Error(`${f.name}${key}: +Inf bucket != _count`);
  }
}

/** The value of the sample `name` whose labels include `labels`; throws when not exactly one. */
export function sampleValue(
  families: Map<string, PromFamily>,
  name: string,
  labels: Record<string, string> = {},
): number {
  const found: number[] = [];
  for (const f of families.values()) {
    for (const s of f.samples) {
      if (s.name !== name) continue;
      if (Object.entries(labels).every(([k, v]) => s.labels[k] === v)) found.push(s.value);
    }
  }
  if (found.length !== 1) {
    throw new Error(`${name}${JSON.stringify(labels)}: ${found.length} samples`);
  }
  return found[0];
}

/**
 * GET `/metrics` on `port`: status, content type and parsed families. The
 * metrics listener starts beside the client port, so it may not listen yet.
 */
export async function scrape(
  port: number,
): Promise<{ families: Map<string, PromFamily>; contentType: string | null; text: string }> {
  if (!await waitForPort(port, 15_000)) throw new Error(`nothing listens on 127.0.0.1:${port}`);
  const res = await fetch(`http://127.0.0.1:${port}/metrics`, {
    signal: AbortSignal.timeout(10_000),
  });
  const text = await res.text();
  if (res.status !== 200) throw new Error(`/metrics answered ${res.status}`);
  return { families: parsePrometheus(text), contentType: res.headers.get("content-type"), text };
}

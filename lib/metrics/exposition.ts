/**
 * A small writer of Prometheus' text exposition format (version 0.0.4):
 * one `# HELP` and `# TYPE` per family, before its samples, label values
 * escaped, each series once.
 * @module
 */

import type { Histogram } from "./histogram.ts";

/** The Content-Type of the text format. */
export const CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8";

/** Label names and values of one series. */
export type Labels = Readonly<Record<string, string>>;

/** One sample of a counter or gauge family. */
export interface Sample {
  /** The series' labels (none: omit). */
  labels?: Labels;
  /** The value. */
  value: number;
}

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

/** Collects families and renders them as exposition text. */
export class MetricsText {
  #out: string[] = [];
  #families = new Set<string>();
  /** Series of the current family: a backend listed twice must not repeat one. */
  #series = new Set<string>();

  /** A counter family (the name should end in `_total`). */
  counter(name: string, help: string, samples: number | readonly Sample[]): void {
    this.#family(name, "counter", help, samples);
  }

  /** A gauge family. */
  gauge(name: string, help: string, samples: number | readonly Sample[]): void {
    this.#family(name, "gauge", help, samples);
  }

  /** A histogram family: `_bucket{le}` (cumulative, then +Inf), `_sum`, `_count` per series. */
  histogram(
    name: string,
    help: string,
    series: readonly { labels?: Labels; histogram: Histogram }[],
  ): void {
    this.#head(name, "histogram", help);
    for (const { labels, histogram } of series) {
      let cumulative = 0;
      const { bounds, counts } = histogram;
      for (let i = 0; i < bounds.length; i++) {
        cumulative += counts[i];
        this.#sample(`${name}_bucket`, { ...labels, le: formatValue(bounds[i]) }, cumulative);
      }
      this.#sample(`${name}_bucket`, { ...labels, le: "+Inf" }, histogram.count);
      this.#sample(`${name}_sum`, labels, histogram.sum);
      this.#sample(`${name}_count`, labels, histogram.count);
    }
  }

  /** The exposition text (ends with a newline). */
  text(): string {
    return this.#out.join("");
  }

  #family(name: string, type: string, help: string, samples: number | readonly Sample[]): void {
    this.#head(name, type, help);
    if (typeof samples === "number") this.#sample(name, undefined, samples);
    else for (const s of samples) this.#sample(name, s.labels, s.value);
  }

  #head(name: string, type: string, help: string): void {
    // Names are constants of this code: a bad or repeated one is a bug, not input.
    if (!NAME.test(name)) throw new Error(`bad metric name ${name}`);
    if (this.#families.has(name)) throw new Error(`metric family ${name} written twice`);
    this.#families.add(name);
    this.#series.clear();
    this.#out.push(`# HELP ${name} ${escapeHelp(help)}\n# TYPE ${name} ${type}\n`);
  }

  #sample(name: string, labels: Labels | undefined, value: number): void {
    let line = name;
    if (labels !== undefined) {
      const parts: string[] = [];
      for (const key in labels) {
        if (!LABEL.test(key) || key.startsWith("__")) throw new Error(`bad label name ${key}`);
        parts.push(`${key}="${escapeLabelValue(labels[key])}"`);
      }
      if (parts.length > 0) line += `{${parts.join(",")}}`;
    }
    if (this.#series.has(line)) return;
    this.#series.add(line);
    this.#out.push(`${line} ${formatValue(value)}\n`);
  }
}

/** A label value with `\`, `"` and newline escaped, as the format requires. */
export function escapeLabelValue(value: string): string {
  return value.replace(/[\\"\n]/g, (c) => c === "\n" ? "\\n" : `\\${c}`);
}

/** HELP text with `\` and newline escaped. */
export function escapeHelp(text: string): string {
  return text.replace(/[\\\n]/g, (c) => c === "\n" ? "\\n" : "\\\\");
}

/** A sample value: Go's float syntax, `+Inf`, `-Inf`, `NaN`. */
export function formatValue(v: number): string {
  if (Number.isNaN(v)) return "NaN";
  if (v === Infinity) return "+Inf";
  if (v === -Infinity) return "-Inf";
  return String(v);
}

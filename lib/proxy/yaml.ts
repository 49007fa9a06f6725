/**
 * A small, strict YAML reader for the subset nutcracker config files use:
 * block mappings and sequences, flow sequences of scalars (`[a, b]`), plain,
 * 'single' and "double" quoted scalars, comments, and `---`. Anything else
 * (anchors, aliases, tags, block scalars, flow mappings, multi-line
 * scalars, tabs in indentation, duplicate keys) is an error naming the
 * line, never a guess. Scalars stay strings: the config gives them types.
 * @module
 */

/** A parsed YAML value: a scalar (string), a sequence, or a mapping. */
export type YamlValue = string | YamlValue[] | YamlMap;

/** A mapping, keys in file order. */
export type YamlMap = Map<string, YamlValue>;

/** A file that is not in the supported subset; `line` is 1-based. */
export class YamlError extends Error {
  /** Line of the problem. */
  readonly line: number;

  /** An error at `line`. */
  constructor(line: number, message: string) {
    super(`line ${line}: ${message}`);
    this.name = "YamlError";
    this.line = line;
  }
}

interface Line {
  indent: number;
  text: string;
  no: number;
}

/** Parse `text`; an empty document is an empty mapping. */
export function parseYaml(text: string): YamlValue {
  const lines = splitLines(text);
  if (lines.length === 0) return new Map();
  const state = { lines, i: 0 };
  const value = parseBlock(state, lines[0].indent);
  if (state.i < lines.length) {
    const l = lines[state.i];
    throw new YamlError(l.no, "unexpected indentation");
  }
  return value;
}

/** Meaningful lines: comments and blank lines dropped, `---` accepted once at the top. */
function splitLines(text: string): Line[] {
  const out: Line[] = [];
  const raw = text.replace(/^\uFEFF/, "").split(/\r?\n/);
  for (let n = 0; n < raw.length; n++) {
    const line = raw[n];
    const no = n + 1;
    const m = /^( *)(.*)$/.exec(line)!;
    if (m[2].startsWith("\t")) throw new YamlError(no, "tab in indentation");
    const body = stripComment(m[2], no).trimEnd();
    if (body === "") continue;
    if (body === "---" || body.startsWith("--- ")) {
      if (out.length > 0) throw new YamlError(no, "only one YAML document is supported");
      if (body.slice(4).trim() !== "") throw new YamlError(no, "content after ---");
      continue;
    }
    if (body === "...") break;
    if (body.startsWith("%")) throw new YamlError(no, "YAML directives are not supported");
    out.push({ indent: m[1].length, text: body, no });
  }
  return out;
}

/** The line without a trailing `# comment` (a # inside quotes or inside a word stays). */
function stripComment(s: string, no: number): string {
  let quote = "";
  for (let i = 0; i < s.length; i++) {
    const c = s[i];
    if (quote !== "") {
      if (c === "\\" && quote === '"') i++;
      else if (c === quote) {
        if (quote === "'" && s[i + 1] === "'") i++;
        else quote = "";
      }
    } else if (c === "#" && (i === 0 || s[i - 1] === " " || s[i - 1] === "\t")) {
      return s.slice(0, i);
    } else if ((c === '"' || c === "'") && (i === 0 || /[\s:\-\[,]/.test(s[i - 1]))) {
      quote = c;
    }
  }
  if (quote !== "") {
    throw new YamlError(no, "unterminated quoted string (multi-line scalars are not supported)");
  }
  return s;
}

interface State {
  lines: Line[];
  i: number;
}

/** A block (mapping or sequence) whose lines are at exactly `indent`. */
function parseBlock(st: State, indent: number): YamlValue {
  const first = st.lines[st.i];
  if (first.text === "-" || first.text.startsWith("- ")) return parseSeq(st, indent);
  return parseMap(st, indent);
}

function parseSeq(st: State, indent: number): YamlValue[] {
  const out: YamlValue[] = [];
  while (st.i < st.lines.length) {
    const l = st.lines[st.i];
    if (l.indent < indent) break;
    if (l.indent > indent) throw new YamlError(l.no, "unexpected indentation");
    if (!(l.text === "-" || l.text.startsWith("- "))) break;
    const rest = l.text.slice(1).replace(/^ +/, "");
    const restIndent = l.indent + (l.text.length - rest.length);
    st.i++;
    if (rest === "") {
      const next = st.lines[st.i];
      if (next === undefined || next.indent <= indent) {
        throw new YamlError(l.no, "empty sequence item");
      }
      out.push(parseBlock(st, next.indent));
    } else if (rest === "-" || rest.startsWith("- ") || keyOf(rest, l.no) !== undefined) {
      // An inline nested block: treat the rest as a line of its own at its column.
      st.i--;
      st.lines[st.i] = { indent: restIndent, text: rest, no: l.no };
      out.push(parseBlock(st, restIndent));
    } else {
      out.push(parseScalarOrFlow(rest, l.no));
    }
  }
  return out;
}

function parseMap(st: State, indent: number): YamlMap {
  const out: YamlMap = new Map();
  while (st.i < st.lines.length) {
    const l = st.lines[st.i];
    if (l.indent < indent) break;
    if (l.indent > indent) throw new YamlError(l.no, "unexpected indentation");
    const kv = keyOf(l.text, l.no);
    if (kv === undefined) {
      if (l.text === "-" || l.text.startsWith("- ")) break;
      throw new YamlError(l.no, `expected 'key: value', got '${l.text}'`);
    }
    const [key, rest] = kv;
    if (out.has(key)) throw new YamlError(l.no, `duplicate key '${key}'`);
    st.i++;
    if (rest === "") {
      const next = st.lines[st.i];
      // A sequence may sit at the key's own indentation.
      const isSeq = next !== undefined && next.indent === indent &&
        (next.text === "-" || next.text.startsWith("- "));
      if (next !== undefined && (next.indent > indent || isSeq)) {
        out.set(key, parseBlock(st, next.indent));
      } else {
        out.set(key, "");
      }
    } else {
      out.set(key, parseScalarOrFlow(rest, l.no));
    }
  }
  return out;
}

/** `key: rest` split (rest may be empty), or undefined when the line is not a mapping entry. */
function keyOf(text: string, no: number): [string, string] | undefined {
  if (text.startsWith('"') || text.startsWith("'")) {
    const [key, used] = quoted(text, no);
    const after = text.slice(used);
    if (after === ":" || after.startsWith(": ")) return [key, after.slice(1).trim()];
    return undefined;
  }
  const m = /^([^:]*?)\s*:(?: +(.*))?$/.exec(text);
  if (m === null || m[1] === "") {
    return undefined;
  }
  // "host:port:weight" is a scalar, not a key: a key's colon is followed by a space or the end.
  const key = m[1];
  if (/^[?&*!|>%@`]/.test(key)) throw new YamlError(no, `unsupported YAML syntax in '${text}'`);
  return [key, (m[2] ?? "").trim()];
}

/** A scalar, or a flow sequence of scalars. */
function parseScalarOrFlow(text: string, no: number): YamlValue {
  if (text.startsWith("[")) {
    if (!text.endsWith("]")) throw new YamlError(no, "a flow sequence must end on its line");
    const inner = text.slice(1, -1).trim();
    if (inner === "") return [];
    return splitFlow(inner, no).map((p) => scalar(p.trim(), no));
  }
  return scalar(text, no);
}

function splitFlow(s: string, no: number): string[] {
  const parts: string[] = [];
  let cur = "";
  for (let i = 0; i < s.length; i++) {
    const c = s[i];
    if ((c === '"' || c === "'") && cur.trim() === "") {
      const [, used] = quoted(s.slice(i), no);
      cur += s.slice(i, i + used);
      i += used - 1;
    } else if (c === ",") {
      parts.push(cur);
      cur = "";
    } else if (c === "[" || c === "]" || c === "{" || c === "}") {
      throw new YamlError(no, "nested flow collections are not supported");
    } else cur += c;
  }
  parts.push(cur);
  return parts;
}

function scalar(text: string, no: number): string {
  if (text.startsWith('"') || text.startsWith("'")) {
    const [value, used] = quoted(text, no);
    if (text.slice(used).trim() !== "") {
      throw new YamlError(no, `text after a quoted string: '${text}'`);
    }
    return value;
  }
  if (/^[&*!|>{%@`]/.test(text)) {
    throw new YamlError(
      no,
      `unsupported YAML syntax (anchor, alias, tag, block scalar or flow mapping): '${text}'`,
    );
  }
  if (text.includes(": ")) throw new YamlError(no, `a plain scalar cannot contain ': ': '${text}'`);
  if (text === "~" || text === "null") return "";
  return text;
}

/** The value of the quoted string at the start of `s` and the characters it used. */
function quoted(s: string, no: number): [string, number] {
  const q = s[0];
  let out = "";
  for (let i = 1; i < s.length; i++) {
    const c = s[i];
    if (q === "'") {
      if (c === "'") {
        if (s[i + 1] === "'") {
          out += "'";
          i++;
          continue;
        }
        return [out, i + 1];
      }
      out += c;
      continue;
    }
    if (c === '"') return [out, i + 1];
    if (c !== "\\") {
      out += c;
      continue;
    }
    const e = s[++i];
    const simple: Record<string, string> = {
      "\\": "\\",
      '"': '"',
      "/": "/",
      "n": "\n",
      "t": "\t",
      "r": "\r",
      "0": "\0",
      " ": " ",
    };
    if (e !== undefined && Object.hasOwn(simple, e)) out += simple[e];
    else if (e === "x" && /^[0-9a-fA-F]{2}$/.test(s.slice(i + 1, i + 3))) {
      out += String.fromCharCode(parseInt(s.slice(i + 1, i + 3), 16));
      i += 2;
    } else throw new YamlError(no, `unsupported escape '\\${e ?? ""}'`);
  }
  throw new YamlError(no, "unterminated quoted string");
}

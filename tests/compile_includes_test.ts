/**
 * Modules memrep loads by URL (`new URL("./x.ts", import.meta.url)`: serve
 * threads' Workers and the dynamic imports kept non-literal so that Deno
 * does not read every command's sources at start-up) are invisible to
 * `deno compile`'s graph: compile.sh must `--include` each, or the
 * executable fails when it first loads one.
 */

import { ok } from "./helpers/assert.ts";
import { REPO_ROOT } from "./helpers/mod.ts";

function libFiles(dir: string): string[] {
  const out: string[] = [];
  for (const e of Deno.readDirSync(dir)) {
    const path = `${dir}/${e.name}`;
    if (e.isDirectory) out.push(...libFiles(path));
    else if (e.name.endsWith(".ts") && !e.name.endsWith("_test.ts")) out.push(path);
  }
  return out;
}

Deno.test("compile.sh --include's every module lib/ loads by URL", () => {
  const root = REPO_ROOT.replace(/\/$/, "");
  const compile = Deno.readTextFileSync(`${root}/compile.sh`);
  const included = new Set([...compile.matchAll(/--include (\S+)/g)].map((m) => m[1]));
  const byUrl: string[] = [];
  for (const file of libFiles(`${root}/lib`)) {
    const text = Deno.readTextFileSync(file);
    for (const m of text.matchAll(/new URL\("([^"]+\.ts)", import\.meta\.url\)/g)) {
      const url = new URL(m[1], `file://${file}`);
      byUrl.push(url.pathname.slice(root.length + 1));
    }
  }
  ok(byUrl.length >= 5, `found only ${byUrl.join(", ")}`);
  const missing = byUrl.filter((p) => !included.has(p));
  ok(missing.length === 0, `compile.sh does not --include ${missing.join(", ")}`);
});

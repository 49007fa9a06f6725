#!/usr/bin/env bash
# Build standalone memrep executables with `deno compile`, using the same
# permission set the tests run under (-P=memrep from deno.json) and the same
# V8 flags (lib/v8_flags.ts).
#
# Usage: ./compile.sh [--host | TARGET ...]
#   no argument   all six targets
#   --host        only the machine's own target
#   TARGET        any of the targets listed below
# Output: dist/memrep-<target>[.exe]
#
# deno compile downloads the matching runtime (denort) from dl.deno.land for
# every target. Where that host is unreachable, point DENORT_BIN at a local
# denort binary (it is passed through to deno compile, host target only).
set -euo pipefail
cd "$(dirname "$0")"

ALL_TARGETS=(
  x86_64-unknown-linux-gnu
  aarch64-unknown-linux-gnu
  x86_64-apple-darwin
  aarch64-apple-darwin
  x86_64-pc-windows-msvc
  aarch64-pc-windows-msvc
)

host="$(deno eval --quiet 'console.log(Deno.build.target)')"
targets=()
if [ "$#" -eq 0 ]; then
  targets=("${ALL_TARGETS[@]}")
else
  for arg in "$@"; do
    case "$arg" in
      --host) targets+=("$host") ;;
      -h | --help)
        sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'
        exit 0
        ;;
      *)
        if [[ " ${ALL_TARGETS[*]} " != *" $arg "* ]]; then
          echo "compile.sh: unknown target '$arg' (known: ${ALL_TARGETS[*]})" >&2
          exit 2
        fi
        targets+=("$arg")
        ;;
    esac
  done
fi

# The V8 flags memrep runs with (lib/v8_flags.ts; the tests pass the same ones).
v8flags="$(deno eval --quiet 'import { v8FlagsArg } from "./lib/v8_flags.ts"; console.log(v8FlagsArg());')"

mkdir -p dist
failed=()
for t in "${targets[@]}"; do
  out="dist/memrep-$t"
  [[ "$t" == *windows* ]] && out="$out.exe"
  if [ -n "${DENORT_BIN:-}" ] && [ "$t" != "$host" ]; then
    echo "compile.sh: warning: DENORT_BIN is set but $t is not the host target ($host)" >&2
  fi
  echo "compile.sh: $t -> $out"
  log="$(mktemp)"
  # Modules loaded by URL, not by a literal import (workers; the subcommands and serve_run.ts,
  # so that Deno does not read every command's sources at start-up): included explicitly.
  if deno compile -P=memrep "$v8flags" --config deno.json --include lib/cli/serve_worker.ts --include lib/cli/serve.ts --include lib/cli/serve_run.ts --include lib/cli/proxy.ts --include lib/cli/replicate.ts --include lib/auth/mod.ts --target "$t" --output "$out" main.ts >"$log" 2>&1; then
    cat "$log"
  else
    cat "$log" >&2
    if grep -qE 'dl\.deno\.land|error sending request|dns error|denort' "$log"; then
      echo "compile.sh: cannot get the deno runtime (denort) for $t: dl.deno.land is unreachable." >&2
      echo "compile.sh: set DENORT_BIN=/path/to/denort (a denort $(deno --version | awk 'NR==1{print $2}') for $host) to build the host target offline." >&2
    fi
    failed+=("$t")
  fi
  rm -f "$log"
done

if [ "${#failed[@]}" -gt 0 ]; then
  echo "compile.sh: failed: ${failed[*]}" >&2
  exit 1
fi
echo "compile.sh: built ${#targets[@]} target(s) in dist/"

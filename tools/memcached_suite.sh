#!/bin/bash
# Runs memcached's own Perl suite (t/*.t of memcached 1.6.18) against
# `memrep serve`: a memcached-debug wrapper starts memrep in its place
# (without `-o relaxed_privileges`, which only seccomp builds of memcached
# know), and timedrun keeps the pid, as memcached's passes signals through
# (restart.t stops the server with SIGUSR1). Prints one line per test file:
# its name and exit code (the number of failed tests; 0: passed or skipped).
# SSL_TEST=1 runs every listener over TLS (needs perl's IO::Socket::SSL).
#
#   tools/memcached_suite.sh <memcached git dir or source tree> [tag [t/x.t ...]]
#   tools/memcached_suite.sh /work/.mirror/memcached+memcached/repo 1.6.18
set -eu
src=${1:?usage: $0 <memcached git dir or source tree> [tag [t/x.t ...]]}
tag=${2:-1.6.18}
shift $(($# < 2 ? $# : 2))
repo=$(cd "$(dirname "$0")/.." && pwd)
dir=$(mktemp -d "${TMPDIR:-/tmp}/memrep_mc_suite.XXXXXX")
if [ -d "$src/t" ]; then
  cp -r "$src/t" "$dir/t"
  mkdir -p "$dir/doc" && cp "$src/doc/protocol.txt" "$dir/doc/"
else
  git --git-dir="$src" archive "$tag" t doc/protocol.txt | tar -x -C "$dir"
fi
cat > "$dir/memcached-debug" <<EOF
#!/bin/bash
args=()
while [ \$# -gt 0 ]; do
  if [ "\$1" = -o ] && [ "\${2:-}" = relaxed_privileges ]; then shift 2; continue; fi
  args+=("\$1")
  shift
done
exec deno run -q -P=memrep --config "$repo/deno.json" --v8-flags=--max-inlined-bytecode-size=1000,--max-inlined-bytecode-size-cumulative=4000 "$repo/main.ts" serve "\${args[@]}"
EOF
printf '#!/bin/sh\nshift\nexec "$@"\n' > "$dir/timedrun"
chmod +x "$dir/memcached-debug" "$dir/timedrun"
mkdir -p "$dir/out"
cd "$dir"
[ $# -gt 0 ] || set -- t/*.t
# MEMREP_SUITE_JOBS files at a time (most of their time is sleep); the
# files that want fixed ports (11211 and up) run alone, after the others.
jobs=${MEMREP_SUITE_JOBS:-1}
run_one() {
  b=$(basename "$1" .t)
  code=0
  timeout 600 perl "t/$b.t" > "out/$b.log" 2>&1 || code=$?
  echo "$b $code"
}
export -f run_one
alone=" issue_67 proxy "
printf '%s\n' "$@" | while read -r f; do
  case "$alone" in *" $(basename "$f" .t) "*) ;; *) echo "$f" ;; esac
done | xargs -P "$jobs" -I{} bash -c 'run_one {}'
for f in "$@"; do
  case "$alone" in *" $(basename "$f" .t) "*) run_one "$f" ;; esac
done
echo "logs: $dir/out"

#!/usr/bin/env bash
# concurrent_writer.sh PROGRAM: runs examples/concurrent-writer against nbdkit memory (started in
# captive mode, so nbdkit stops when the program exits) with a 12 MiB random file, which is not a
# multiple of the program's chunk size, and checks it reports the copy verified.
set -euo pipefail
prog=$1
command -v nbdkit >/dev/null || { echo "nbdkit not installed"; exit 77; }
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
head -c $((12 * 1024 * 1024 + 4097)) /dev/urandom > "$dir/src"
out=$(nbdkit -U - memory 16M --run "\"$prog\" \"$dir/src\" \"\$uri\"")
echo "$out"
[[ $out == "copied and verified 12587009 bytes through the concurrent writer" ]]
# A server that fails writes makes the program fail, never report success.
if nbdkit -U - --filter=error memory 16M error-pwrite-rate=1 \
     --run "\"$prog\" \"$dir/src\" \"\$uri\"" 2>"$dir/err"; then
  echo "FAIL: copy reported success against a failing server"; exit 1
fi
grep -q "a command failed: Input/output error" "$dir/err" || { cat "$dir/err"; exit 1; }

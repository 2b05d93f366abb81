#!/bin/sh
# run-cargo.sh CARGO ARGS...: runs `CARGO ARGS...` for a ctest, or skips it (exit 77) when cargo
# is missing.  CARGO is the path CMake found; when it is unusable, cargo is looked up in PATH.
cargo=$1
shift
if [ ! -x "$cargo" ]; then
  cargo=$(command -v cargo) || { echo "SKIP: cargo not found"; exit 77; }
fi
exec "$cargo" "$@"

#!/bin/sh
# run-cargo.sh REGISTRY CARGO ARGS...: runs `CARGO ARGS...` for a ctest of the nbd-tokio crate,
# or skips it (exit 77) when tokio is not in REGISTRY, the directory of Debian's crate sources
# (apt-get install librust-tokio-dev librust-tokio-macros-dev); ../run-cargo.sh skips it
# without cargo.
registry=$1
shift
for crate in tokio tokio-macros; do
  if ! ls -d "$registry/$crate"-[0-9]* >/dev/null 2>&1; then
    echo "SKIP: crate $crate is not in $registry (Debian package librust-$crate-dev)"
    exit 77
  fi
done
exec sh "$(dirname "$0")/../run-cargo.sh" "$@"

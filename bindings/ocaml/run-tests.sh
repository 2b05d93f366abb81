#!/bin/sh
# run-tests.sh: builds the OCaml binding with dune and runs its tests (the ctest ocaml_tests).
# Usage: run-tests.sh SOURCE_DIR DUNE_BUILD_DIR, with NBDPP_GENERATED_DIR, NBDPP_INCLUDE_DIR and
# NBDPP_LIB_DIR set (see src/dune).  Exits 77, which ctest reports as skipped, when an OCaml tool
# is missing.
set -u
src=$1
build=$2

for tool in dune ocamlfind; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "SKIP: $tool is not installed (apt-get install ocaml-dune ocaml-findlib)"
    exit 77
  fi
done
for package in alcotest unix threads; do
  if ! ocamlfind query "$package" >/dev/null 2>&1; then
    echo "SKIP: OCaml package $package is missing (apt-get install libalcotest-ocaml-dev)"
    exit 77
  fi
done
for file in NBD.ml NBD.mli nbd_stubs.c; do
  if [ ! -f "$NBDPP_GENERATED_DIR/$file" ]; then
    echo "$NBDPP_GENERATED_DIR/$file is missing: build the project first"
    exit 1
  fi
done

# --force: run the tests even when dune remembers that they passed with the same inputs.
exec dune test --root "$src" --build-dir "$build" --force --display short -j 2

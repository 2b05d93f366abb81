#!/bin/sh
# run.sh: the OCaml tests that work from outside the source tree (ctest label ocaml).
#   run.sh install   BUILD PREFIX  `cmake --install BUILD --prefix PREFIX` into a fresh PREFIX
#   run.sh installed SRC PREFIX VERSION
#                                  findlib reports VERSION for nbdpp; a dune project made in a temp
#                                  dir, (libraries nbdpp), built with only
#                                  OCAMLPATH=PREFIX/lib/ocaml; runs installed.ml under nbdkit
#   run.sh compat    SRC PREFIX    compat.ml, written for libnbd's OCaml binding, built unchanged
#                                  against Debian's libnbd-ocaml-dev ((libraries nbd), when it is
#                                  installed) and against PREFIX ((libraries nbdpp)); both run
# SRC is bindings/ocaml.  Exits 77 (skipped) when a tool is missing.  Programs run under
# `nbdkit -U - --run`, which serves a private Unix socket and stops when the program ends.
set -eu
mode=$1

need() {
  for tool in "$@"; do
    if ! command -v "$tool" >/dev/null 2>&1; then
      echo "SKIP: $tool is not installed"
      exit 77
    fi
  done
}

case $mode in
install)
  need cmake dune ocamlfind
  rm -rf "$3"
  exec cmake --install "$2" --prefix "$3"
  ;;
installed | compat) ;;
*)
  echo "usage: run.sh install|installed|compat ..." >&2
  exit 2
  ;;
esac

src=$2
prefix=$(realpath "$3")
need dune ocamlfind nbdkit
if [ ! -f "$prefix/lib/ocaml/nbdpp/META" ]; then
  echo "$prefix/lib/ocaml/nbdpp/META is missing: the ocaml_install test installs it"
  exit 1
fi
# The directory holding the installed libnbd.so.0 (lib, or lib/<multiarch> under /usr).
libdir=$(dirname "$(find "$prefix" -name libnbd.so.0 | head -n 1)")
libdir=$(realpath "$libdir")

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# make_project DIR LIBRARY PROGRAM: a dune project with one executable using LIBRARY, native
# (PROGRAM.exe) and bytecode (PROGRAM.bc).
make_project() {
  mkdir -p "$1"
  echo '(lang dune 2.9)' >"$1/dune-project"
  printf '(executable\n (name %s)\n (modes byte exe)\n (libraries %s))\n' "$3" "$2" >"$1/dune"
  cp "$src/consumer/$3.ml" "$1/"
}

# with_nbdpp COMMAND...: only OCAMLPATH points at the prefix; nothing else leads to the library.
with_nbdpp() {
  env -u LD_LIBRARY_PATH -u CAML_LD_LIBRARY_PATH -u OCAMLFIND_CONF OCAMLPATH="$prefix/lib/ocaml" "$@"
}

if [ "$mode" = installed ]; then
  version=$(with_nbdpp ocamlfind query -format '%v' nbdpp)
  if [ "$version" != "$4" ]; then
    echo "findlib says nbdpp is version '$version', the project is $4"
    exit 1
  fi
  make_project "$tmp/proj" nbdpp installed
  with_nbdpp dune build --root "$tmp/proj" ./installed.exe
  with_nbdpp nbdkit -U - memory 1M --run "'$tmp/proj/_build/default/installed.exe' \"\$uri\" '$libdir'"
  # Bytecode finds dllnbdpp_stubs.so through CAML_LD_LIBRARY_PATH, when linking and running.
  stublibs="CAML_LD_LIBRARY_PATH=$prefix/lib/ocaml/stublibs"
  with_nbdpp env "$stublibs" dune build --root "$tmp/proj" ./installed.bc
  with_nbdpp env "$stublibs" nbdkit -U - memory 1M \
    --run "'$tmp/proj/_build/default/installed.bc' \"\$uri\" '$libdir'"
  exit 0
fi

# compat: ours first, then Debian's when it is installed.
make_project "$tmp/ours" nbdpp compat
with_nbdpp dune build --root "$tmp/ours" ./compat.exe
with_nbdpp nbdkit -U - memory 1M --run "'$tmp/ours/_build/default/compat.exe' \"\$uri\"" \
  >"$tmp/ours.out"
cat "$tmp/ours.out"
grep -q '^package: nbdpp ' "$tmp/ours.out"
grep -q '^compat: ok$' "$tmp/ours.out"

if ocamlfind query nbd >/dev/null 2>&1; then
  make_project "$tmp/theirs" nbd compat
  # Only the library name differs between the two projects.
  diff "$tmp/ours/compat.ml" "$tmp/theirs/compat.ml"
  [ "$(sed 's/nbdpp/nbd/' "$tmp/ours/dune")" = "$(cat "$tmp/theirs/dune")" ]
  env -u OCAMLPATH dune build --root "$tmp/theirs" ./compat.exe
  nbdkit -U - memory 1M --run "'$tmp/theirs/_build/default/compat.exe' \"\$uri\"" >"$tmp/theirs.out"
  cat "$tmp/theirs.out"
  grep -q '^package: libnbd ' "$tmp/theirs.out"
  grep -q '^compat: ok$' "$tmp/theirs.out"
else
  echo "Debian's libnbd-ocaml-dev is not installed (findlib package nbd): only our half ran"
fi

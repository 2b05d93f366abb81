#!/bin/sh
# record_corpus.sh FUZZ_RECORD [OUTDIR]: records the seed corpus (default: fuzz/corpus) from
# real servers: each seed is one fuzz_record session (settings byte + the server's bytes)
# against nbdkit or qemu-nbd in a configuration of its own, started here on a private Unix
# socket and stopped by its pid.  Needs nbdkit and qemu-nbd/qemu-img/qemu-io.
set -eu
record=$(realpath "$1")
out=$(realpath "${2:-$(dirname "$0")/corpus}")
dir=$(mktemp -d)
trap 'for p in "$dir"/*.pid; do [ -f "$p" ] && kill "$(cat "$p")" 2>/dev/null; done; rm -rf "$dir"' EXIT
cd "$dir"

# nbd_ext_server (tests/extserver, built next to fuzz_record) speaks the extended headers
# extension, which no packaged server does.
ext_server=${NBD_EXT_SERVER:-$(dirname "$record")/../tests/nbd_ext_server}

# seed NAME SETTINGS SERVER...: starts SERVER (nbdkit arguments, qemu IMAGE FORMAT, or ext
# ARGS... for nbd_ext_server), records one session, stops the server.
seed() {
  name=$1 settings=$2
  shift 2
  # A socket and pid file of its own: the last server may still be exiting (and unlinking).
  sock="$dir/$name.sock" pid="$dir/$name.pid"
  if [ "$1" = qemu ]; then
    cp "$2" "$name.img"  # and an image of its own: the last server may still hold its lock
    qemu-nbd -k "$sock" -f "$3" -t --fork --pid-file="$pid" "$name.img"
  elif [ "$1" = ext ]; then
    shift
    "$ext_server" --unix "$sock" --pid-file "$pid" "$@" &
    while [ ! -s "$pid" ]; do sleep 0.05; done
  else
    nbdkit -P "$pid" -U "$sock" "$@"
  fi
  "$record" "$sock" "$settings" "$out/$name"
  kill "$(cat "$pid")"
}

# Settings bits (fuzz/session.hpp): 1 opt mode, 2 no structured replies, 4 no strict mode,
# 8 NBD_OPT_EXPORT_NAME, 16 full info, 32 debug.
seed nbdkit-memory            0  memory 1M
seed nbdkit-memory-opt-mode   49 memory 1M
seed nbdkit-simple-replies    2  memory 1M
seed nbdkit-no-strict         6  memory 1M
seed nbdkit-oldstyle          4  -o memory 1M
seed nbdkit-export-name       8  memory 1M
seed nbdkit-errors            0  --filter=error memory 1M error=EIO error-rate=100%
seed nbdkit-block-size        16 --filter=blocksize-policy memory 1M blocksize-minimum=512 \
                                 blocksize-preferred=4096 blocksize-maximum=65536
seed nbdkit-data              32 data '"hello" * 100 @2000 ( 0xde 0xad ) * 256' size=1M

# qemu-nbd: a qcow2 image with 512-byte clusters, so reads see holes between data.
qemu-img create -q -f qcow2 -o cluster_size=512 disk.qcow2 1M
qemu-io -f qcow2 -c 'write -q -P 0x11 512 512' -c 'write -q -P 0x22 8192 1024' disk.qcow2 >/dev/null
seed qemu-nbd-qcow2           0  qemu disk.qcow2 qcow2
seed qemu-nbd-opt-mode        49 qemu disk.qcow2 qcow2
seed qemu-nbd-simple-no-strict 6 qemu disk.qcow2 qcow2

# nbd_ext_server: extended headers (32-byte requests and replies, 64-bit block status).
seed ext-server-extended      0  ext --size 1M
seed ext-server-opt-mode      49 ext --size 1M --block-status-payload
seed ext-server-refused       0  ext --size 1M --no-extended-headers

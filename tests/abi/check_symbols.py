#!/usr/bin/env python3
# check_symbols.py: the exported dynamic symbols of our libnbd.so.0 are exactly libnbd 1.24's (each
# in its node, nodes chained as libnbd chains them) plus api.yaml's NBDPP_1.0 calls, and nothing else.
# An installed libnbd (Debian's is older) must export a subset of ours, in the same nodes and chain.
# Usage: check_symbols.py OUR_LIB REFERENCE_TXT API_YAML [DEBIAN_LIB]
import os
import re
import subprocess
import sys

import yaml

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "generator"))
from nbdgen.load import load_abi  # noqa: E402


def exported(lib):
    """{symbol: version} of the defined dynamic symbols, and the version chain {node: parent}."""
    out = subprocess.run(["readelf", "--dyn-syms", "-W", lib], check=True, capture_output=True,
                         text=True).stdout
    syms = {}
    for line in out.splitlines():
        f = line.split()
        # Skip undefined imports and the ABS entries that only name the version nodes.
        if len(f) >= 8 and f[6] not in ("UND", "ABS") and f[4] in ("GLOBAL", "WEAK"):
            name, _, version = f[7].partition("@")
            syms[name] = version.lstrip("@")
    vd = subprocess.run(["readelf", "-V", "-W", lib], check=True, capture_output=True, text=True).stdout
    chain, last = {}, None
    for line in vd.split("Version needs")[0].splitlines():
        m = re.search(r"Flags: (\w+).*Name: (\S+)", line)
        if m:
            last = m.group(2)
            if m.group(1) != "BASE":
                chain[last] = None
            continue
        m = re.search(r"Parent 1: (\S+)", line)
        if m and last:
            chain[last] = m.group(1)
    return syms, chain


def main(lib, reference, api_yaml, debian_lib=None):
    expected = load_abi(reference)
    with open(api_yaml, encoding="utf-8") as f:
        api = yaml.safe_load(f)
    frozen = set(api["frozen"])
    for name, call in api["calls"].items():
        if call["since"] not in frozen:
            expected[f"nbd_{name}"] = call["since"]
    ours, chain = exported(lib)
    problems = []
    for sym, node in sorted(expected.items()):
        if ours.get(sym) != node:
            problems.append(f"{sym}: expected in {node}, found {ours.get(sym, 'nothing')}")
    for sym in sorted(set(ours) - set(expected)):
        problems.append(f"{sym}@{ours[sym]}: exported but not part of the API")
    versions = api["symbol_versions"]
    want_chain = {v: (versions[i - 1] if i else None) for i, v in enumerate(versions)}
    if chain != want_chain:
        problems.append(f"version chain {chain} != {want_chain}")
    if debian_lib and os.path.exists(debian_lib):
        theirs, their_chain = exported(debian_lib)
        missing = sorted(set(theirs.items()) - set(ours.items()))
        if missing:
            problems.append(f"exported by {debian_lib} but not by ours in that node: {missing}")
        if any(chain.get(node, "absent") != parent for node, parent in their_chain.items()):
            problems.append(f"version chain of {debian_lib} is not part of ours: {their_chain}")
        print(f"compared with {debian_lib}: {len(theirs)} symbols")
    libnbd = sum(1 for v in ours.values() if v.startswith("LIBNBD_"))
    print(f"{lib}: {libnbd} LIBNBD_* functions, {len(ours) - libnbd} others")
    for p in problems:
        print("FAIL:", p)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))

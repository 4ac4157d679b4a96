#!/usr/bin/python3
"""Writes tools/function_order.txt: the functions the simulator runs for every packet, in the
order the linker is to place them (one after the other at the start of the program's code), so
that the per-packet code is contiguous and fits the CPU's instruction cache with the fewest
conflicts. Read by the build (CMake option RNICSIM_FUNCTION_ORDER, gold's
--section-ordering-file, with -ffunction-sections). A list that names functions that no longer
exist only places fewer of them: nothing fails, the simulator gets slower; regenerate it after
the packet path changes.

How: callgrind runs write_bw with 64 KiB messages (100 and 300 messages on 1 QP; 2 and 6 on each
of 100 QPs) and 64 B messages (1000 and 3000 on 1 QP); the functions whose instruction count grows by at least 0.3 per packet between
the two lengths, most instructions first, are listed by their section names: the large
messages' functions on 1 QP first (together they fit the instruction cache), then those that
many QPs add, then those that small messages add.

usage: tools/gen_function_order.py BUILD/bin/rnicsim   (a build with -ffunction-sections; needs
       valgrind, Debian's package of that name)
"""
import collections
import os
import re
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# (message size, QPs, messages per QP in the short and the long run, packets per message)
CASES = [("64KiB", 1, 100, 300, 16), ("64KiB", 100, 2, 6, 16), ("64B", 1, 1000, 3000, 1)]


def profile(rnicsim, size, qps, n, out):
    with tempfile.TemporaryDirectory() as d:
        subprocess.run(["valgrind", "--tool=callgrind", "--demangle=no",
                        f"--callgrind-out-file={out}", rnicsim, "run",
                        os.path.join(ROOT, "configs/default.toml"), "--out", d, "--no-plots",
                        "--set", "run.workloads=write_bw", "--set", "capture.pcap=false",
                        "--set", f"write_bw.size={size}", "--set", f"write_bw.qps={qps}",
                        "--set", f"write_bw.iterations={n}"],
                       check=True, capture_output=True,
                       env=dict(os.environ, SC_COPYRIGHT_MESSAGE="DISABLE"))
    text = subprocess.run(["callgrind_annotate", "--auto=no", "--tree=none", "--threshold=100",
                           out], capture_output=True, text=True, check=True).stdout
    counts = collections.Counter()
    started = False
    for line in text.splitlines():
        if "file:function" in line:
            started = True
            continue
        m = re.match(r"\s*([\d,]+)\s+(?:\([^)]*\)\s+)?(\S.*)$", line) if started else None
        if not m:
            continue
        name = re.sub(r" \[[^]]*\]$", "", m.group(2))
        name = name.split(":", 1)[1] if ":" in name else name
        counts[name] += int(m.group(1).replace(",", ""))
    return counts


def main():
    if len(sys.argv) != 2:
        print(__doc__)
        return 2
    rnicsim = sys.argv[1]
    ours = set(subprocess.run(["nm", "--defined-only", "--format=just-symbols", rnicsim],
                              capture_output=True, text=True, check=True).stdout.split())
    names = []
    with tempfile.TemporaryDirectory() as d:
        for size, qps, n1, n2, pkts in CASES:  # each case's functions after those before it
            a = profile(rnicsim, size, qps, n1, os.path.join(d, "a"))
            b = profile(rnicsim, size, qps, n2, os.path.join(d, "b"))
            per_packet = collections.Counter(
                {k: (b[k] - a[k]) / ((n2 - n1) * qps * pkts) for k in set(a) | set(b)})
            names += [k for k, v in per_packet.most_common()
                      if v >= 0.3 and k in ours and k not in names]
    path = os.path.join(ROOT, "tools", "function_order.txt")
    with open(path, "w") as f:
        for n in names:  # a function marked hot (RN_HOT) has its section under .text.hot
            f.write(f".text.hot.{n}\n.text.{n}\n")
    print(f"{path}: {len(names)} functions")
    return 0


if __name__ == "__main__":
    sys.exit(main())

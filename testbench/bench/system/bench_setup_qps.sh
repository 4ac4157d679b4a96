#!/bin/bash
# Setup cost per QP: wall-clock seconds a write_bw run spends outside its traffic phase (the
# drivers creating, connecting and destroying QPs, CQs and MRs on both hosts, the perftest
# registering buffers), divided by the QPs, at 1k and 16k QPs; and the whole process's CPU time
# per QP (less sensitive to other load on the machine). Linear setup keeps the per-QP figures
# flat; a scan per QP makes them grow with the QPs. Measures, never asserts.
#   testbench/bench/system/bench_setup_qps.sh [BUILD_DIR] [QPS...]
set -euo pipefail
root=$(cd "$(dirname "$0")/../../.." && pwd)
build=${1:-$root/build}
shift || true
counts=("$@")
[ ${#counts[@]} -eq 0 ] && counts=(1024 16384)
export SC_COPYRIGHT_MESSAGE=DISABLE
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
for q in "${counts[@]}"; do
  out=$(mktemp -d)
  /usr/bin/time -f "%U %S" -o "$out/cpu" taskset -c 0 "$build/bin/rnicsim" run "$root/configs/default.toml" --no-plots --out "$out" \
    --set run.workloads=write_bw --set capture.pcap=false --set write_bw.size=64 \
    --set write_bw.iterations=1 --set write_bw.tx_depth=16 --set write_bw.rx_depth=16 \
    --set write_bw.cq_mod=1 --set nic.max_qps="$q" --set write_bw.qps="$q" >/dev/null
  /usr/bin/python3 - "$out/stats.json" "$q" "$out/cpu" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
q = int(sys.argv[2])
cpu = sum(float(x) for x in open(sys.argv[3]).read().split()[-2:])
run = s["run"]
w = run["workloads"]["write_bw"]
setup = run["wall_seconds"] - w["traffic_wall_seconds"]
print(f"{q:6d} QPs: {setup:.3f} s wall outside traffic = {setup / q * 1e6:.1f} us per QP; "
      f"process CPU {cpu:.2f} s = {cpu / q * 1e6:.1f} us per QP "
      f"(ok {run['ok']}, traffic {w['traffic_wall_seconds']:.3f} s wall)")
PY
  rm -rf "$out"
done

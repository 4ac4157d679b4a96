#!/bin/bash
# Simulator speed of two builds, compared on a machine whose own speed drifts: bench_sim_speed.sh's
# write_bw cases (1 QP; 1000 QPs), the two builds alternating on one core, PAIRS times. For each
# pair the ratio NEW/OLD of simulated packets per wall-second; the median of the ratios is the
# figure to quote (a single run, or the best of a few, moves by 20-30% on a shared virtual machine).
#   testbench/bench/system/bench_sim_speed_compare.sh OLD_RNICSIM NEW_RNICSIM [PAIRS]
set -euo pipefail
root=$(cd "$(dirname "$0")/../../.." && pwd)
old=$1
new=$2
pairs=${3:-10}
export SC_COPYRIGHT_MESSAGE=DISABLE
common=(--no-plots --set run.workloads=write_bw --set capture.pcap=false --set write_bw.size=64KiB
        --set link.rate=100Gbps)
one_qp=(--set write_bw.qps=1 --set write_bw.iterations=20000)
many_qps=(--set write_bw.qps=1000 --set write_bw.iterations=20 --set write_bw.tx_depth=4
          --set write_bw.cq_mod=4)
pps() {  # binary, args...
  local dir
  dir=$(mktemp -d)
  taskset -c 0 "$1" run "$root/configs/default.toml" --out "$dir" "${common[@]}" "${@:2}" |
    sed -n 's/.*= \([0-9]*\) packets per wall-second/\1/p' | head -1
  rm -rf "$dir"
}
median() { sort -g | awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
pps "$old" "${one_qp[@]}" >/dev/null  # warm-up (see bench_sim_speed.sh)
for case in one_qp many_qps; do
  declare -n args=$case
  ratios=()
  for ((i = 1; i <= pairs; i++)); do
    # Alternate which build goes first, so that a drift within a pair favours neither.
    if ((i % 2)); then
      a=$(pps "$old" "${args[@]}"); b=$(pps "$new" "${args[@]}")
    else
      b=$(pps "$new" "${args[@]}"); a=$(pps "$old" "${args[@]}")
    fi
    r=$(awk -v a="$a" -v b="$b" 'BEGIN {printf "%.3f", b / a}')
    ratios+=("$r")
    echo "  $case pair $i: old $a, new $b packets per wall-second: $r"
  done
  echo "$case: median new/old $(printf '%s\n' "${ratios[@]}" | median) over $pairs pairs"
done

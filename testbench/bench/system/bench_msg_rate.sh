#!/bin/bash
# Message rate of the model (simulated Mmsg/s, as perftest's MsgRate): 2-byte RDMA WRITEs
# (write_bw size=2), 2-byte RDMA READs (read_bw size=2) and 8-byte atomics (atomic_bw,
# FETCH_AND_ADD, and CMP_AND_SWAP with one QP), with 1, 16 and 256 QPs, at the default
# configuration (100 Gb/s, PCIe Gen3 x16, tx_depth 128, cq_mod 100; READs and atomics 16 in
# flight per QP). Simulated results do not depend on the machine: one run of each; the wall time
# of each run is shown for information.
# Results go to docs/performance.md ("Message rates") by hand (with the machine they ran on).
#   testbench/bench/system/bench_msg_rate.sh [BUILD_DIR]
set -euo pipefail
root=$(cd "$(dirname "$0")/../../.." && pwd)
build=${1:-$root/build}
export SC_COPYRIGHT_MESSAGE=DISABLE
out=$(mktemp -d /tmp/rnicsim-msg-rate-XXXXXX)
trap 'rm -rf "$out"' EXIT
# 100,000 messages in all with 1 and 16 QPs; 256,000 with 256 QPs (1,000 per QP, so that every
# QP refills its 128-deep send queue several times).
iterations() { case $1 in 1) echo 100000 ;; 16) echo 6250 ;; 256) echo 1000 ;; esac; }
rate() {  # workload, qps, extra args...: prints "Mmsg/s wall-seconds"
  local w=$1 q=$2; shift 2
  local report
  report=$("$build/bin/rnicsim" run "$root/configs/default.toml" --no-plots --out "$out" \
    --set run.workloads="$w" --set capture.pcap=false --set "$w.qps=$q" \
    --set "$w.iterations=$(iterations "$q")" "$@")
  echo "$report" | grep -q "result: OK" || { echo "$w with $q QPs failed:" >&2; echo "$report" >&2; exit 1; }
  local mmsg wall
  mmsg=$(echo "$report" | sed -n 's/.*message rate \([0-9.]*\) Mmsg\/s.*/\1/p')
  wall=$(echo "$report" | sed -n 's/.*wall time \([0-9.]*\) s .*/\1/p')
  echo "$mmsg $wall"
}
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
echo
echo "| workload | 1 QP | 16 QPs | 256 QPs |"
echo "|---|---|---|---|"
walls=""
row() {  # label, workload, extra args...
  local label=$1 w=$2; shift 2
  local line="| $label |"
  for q in 1 16 256; do
    local res
    res=$(rate "$w" "$q" "$@")  # a failed run stops the script (set -e)
    read -r mmsg wall <<<"$res"
    line="$line $mmsg |"
    walls="$walls $label/$q: ${wall}s;"
  done
  echo "$line"
}
row "write_bw, 2 B" write_bw --set write_bw.size=2
row "read_bw, 2 B" read_bw --set read_bw.size=2
row "atomic_bw, FETCH_AND_ADD" atomic_bw
row "atomic_bw, CMP_AND_SWAP" atomic_bw --set atomic_bw.atomic_type=CMP_AND_SWAP
echo
echo "Mmsg/s simulated (messages / (last completion - first post)); wall time of each run:$walls"

#!/bin/bash
# Goodput under loss (simulated Gb/s, as perftest's BW average): write_bw and read_bw, 64 KiB
# messages, 1 QP and 16 QPs, with link.loss 0, 0.1% and 1% (each frame, both directions, with
# link.seed 1, 2 and 3: the mean and the range of the three), at the default configuration
# (100 Gb/s, path MTU 4096, tx_depth 128; READs 16 in flight per QP) with an ACK timeout of
# 4.096 us x 2^TIMEOUT (environment, default 12: 16.8 ms; perftest's default 14 is 67 ms, and two
# of those in a row outlast host.driver_timeout). Recovery is go-back-N: a sequence NAK when a later packet
# arrives, the ACK timeout when none does (a lost NAK, a resend lost again, the last packets of
# a burst). Also shown: the retransmitted packets and ACK timeouts of host0's requester (the
# sum over the three seeds).
# Simulated results do not depend on the machine.
# Results go to docs/performance.md ("Goodput under loss") by hand.
#   testbench/bench/system/bench_loss.sh [BUILD_DIR]
set -euo pipefail
root=$(cd "$(dirname "$0")/../../.." && pwd)
build=${1:-$root/build}
timeout=${TIMEOUT:-12}
export SC_COPYRIGHT_MESSAGE=DISABLE
out=$(mktemp -d /tmp/rnicsim-loss-XXXXXX)
trap 'rm -rf "$out"' EXIT
iterations() { case $1 in 1) echo 2000 ;; 16) echo 250 ;; esac; }
one() {  # workload, qps, loss, seed: prints "Gb/s retransmitted timeouts"
  local w=$1 q=$2 loss=$3 seed=$4
  local report
  report=$("$build/bin/rnicsim" run "$root/configs/default.toml" --no-plots --out "$out" \
    --set run.workloads="$w" --set capture.pcap=false --set capture.faults_csv=0 \
    --set "$w.qps=$q" --set "$w.iterations=$(iterations "$q")" --set "$w.size=64KiB" \
    --set "$w.timeout=$timeout" --set link.loss="$loss" --set link.seed="$seed")
  echo "$report" | grep -q "result: OK" || { echo "$w $q QPs loss $loss seed $seed failed:" >&2; echo "$report" >&2; exit 1; }
  local gbps
  gbps=$(echo "$report" | sed -n 's/.*goodput \([0-9.]*\) Gb\/s.*/\1/p' | head -1)
  /usr/bin/python3 - "$out/stats.json" "$gbps" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))["stats"]["host0.nic.req"]
print(sys.argv[2], s["retransmitted"]["value"], s["timeouts"]["value"])
PY
}
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); timeout $timeout"
echo
echo "| workload | QPs | loss | goodput Gb/s (mean, min-max of 3 seeds) | packets resent | ACK timeouts |"
echo "|---|---|---|---|---|---|"
for w in write_bw read_bw; do
  for q in 1 16; do
    for loss in 0 0.001 0.01; do
      vals=() resent=0 tos=0
      for seed in 1 2 3; do
        res=$(one "$w" "$q" "$loss" "$seed") || exit 1
        read -r g r t <<<"$res"
        vals+=("$g")
        resent=$((resent + r))
        tos=$((tos + t))
      done
      stats=$(printf '%s\n' "${vals[@]}" | /usr/bin/python3 -c \
        'import sys; v=[float(x) for x in sys.stdin]; print(f"{sum(v)/len(v):.2f} ({min(v):.2f}-{max(v):.2f})")')
      echo "| $w | $q | $(/usr/bin/python3 -c "print(f'{$loss*100:g}%')") | $stats | $resent | $tos |"
    done
  done
done

#!/bin/bash
# One-way latency (round trip / 2, p50 of 1000 round trips, in us, as perftest reports it) of
# send_lat and write_lat at 2 and 64 bytes, by what the driver uses of device interface v2:
# neither (a version-1 driver), inline data only, the WQE doorbell only, both (the default).
# Also read_lat and atomic_lat (whole round trip), with and without the WQE doorbell.
# Simulated results, the same on any machine. Results go to docs/performance.md ("Model:
# latency") by hand.
#   testbench/bench/system/bench_latency.sh [BUILD_DIR]
set -euo pipefail
root=$(cd "$(dirname "$0")/../../.." && pwd)
build=${1:-$root/build}
export SC_COPYRIGHT_MESSAGE=DISABLE
out=$(mktemp -d /tmp/rnicsim-latency-XXXXXX)
trap 'rm -rf "$out"' EXIT
p50() {  # workload, extra args...: prints the p50 in us
  local w=$1; shift
  local report
  report=$("$build/bin/rnicsim" run "$root/configs/default.toml" --no-plots --out "$out" \
    --set run.workloads="$w" --set capture.pcap=false "$@")
  echo "$report" | grep -q "result: OK" || { echo "$w $* failed:" >&2; echo "$report" >&2; exit 1; }
  /usr/bin/python3 - "$out/stats.json" "$w" <<'PY'
import json, sys
w = json.load(open(sys.argv[1]))["run"]["workloads"][sys.argv[2]]
print(f"{w['latency_ns']['p50'] / 1000:.3f}")
PY
}
echo "| workload, size | neither (a v1 driver) | inline data only | WQE doorbell only | both (the default) |"
echo "|---|---|---|---|---|"
for w in send_lat write_lat; do
  for size in 2 64; do
    a=$(p50 "$w" --set "$w.size=$size" --set host.driver_interface=1) || exit 1
    b=$(p50 "$w" --set "$w.size=$size" --set host.driver_wqe_doorbell=false) || exit 1
    c=$(p50 "$w" --set "$w.size=$size" --set "$w.inline_size=0") || exit 1
    d=$(p50 "$w" --set "$w.size=$size") || exit 1
    echo "| \`$w\`, $size B | $a | $b | $c | **$d** |"
  done
done
echo
echo "| workload | WQE fetched | WQE doorbell (the default) |"
echo "|---|---|---|"
for w in read_lat atomic_lat; do
  a=$(p50 "$w" --set host.driver_wqe_doorbell=false) || exit 1
  b=$(p50 "$w") || exit 1
  echo "| \`$w\` | $a | $b |"
done

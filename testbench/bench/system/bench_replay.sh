#!/bin/bash
# Replay speed (docs/performance.md, "Trace replay"): records and simulated packets per
# wall-second of `rnicsim replay`, on a generated key-value pair of REQUESTS requests (tools/
# gen_kv_trace.py: 64 QPs, small READs and WRITEs) in both forms, and on the captured
# ib_write_bw sample; plus `rnicsim trace check` alone (reading and validating).
# Usage: bench_replay.sh [BUILD_DIR] [REQUESTS]   (defaults: build, 200000)
set -euo pipefail
build=${1:-build} requests=${2:-200000}
root=$(cd "$(dirname "$0")/../../.." && pwd)
rnicsim=$(realpath "$build/bin/rnicsim")
dir=$(mktemp -d /tmp/rnicsim-bench-replay-XXXXXX)
trap 'rm -rf "$dir"' EXIT
export SC_COPYRIGHT_MESSAGE=DISABLE
/usr/bin/python3 "$root/tools/gen_kv_trace.py" --qps 64 --requests "$requests" --seed 1 \
  --server-out "$dir/kv_server.jsonl" --client-out "$dir/kv_client.jsonl" > /dev/null
for s in server client; do
  "$rnicsim" trace convert "$dir/kv_$s.jsonl" "$dir/kv_$s.rntrace" > /dev/null
done
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
echo "| trace | form | records | bytes | check (s) | replay wall (s) | records/s | packets | packets/s | peak RSS (MB) |"
echo "|---|---|---|---|---|---|---|---|---|---|"
row() {  # $1 name, $2 form, $3 server, $4 client
  local recs bytes t0 t1 check out
  recs=$(( $("$rnicsim" trace check "$3" | sed -E 's/.*OK: ([0-9]+) records.*/\1/') +
           $("$rnicsim" trace check "$4" | sed -E 's/.*OK: ([0-9]+) records.*/\1/') ))
  bytes=$(( $(stat -c %s "$3") + $(stat -c %s "$4") ))
  t0=$(date +%s.%N)
  "$rnicsim" trace check "$3" "$4" > /dev/null
  t1=$(date +%s.%N)
  check=$(printf "%.2f" "$(echo "$t1 - $t0" | bc)")
  out=$( { /usr/bin/time -f "RSS %M" "$rnicsim" replay "$3" "$4" --timing asap --out "$dir/out" \
           --no-plots; } 2>&1 )
  echo "$out" | grep -q "result: OK" || { echo "$out" | tail -5; exit 1; }
  echo "$out" | python3 -c '
import re, sys
t = sys.stdin.read()
m = re.search(r"wall time ([0-9.]+) s\s+(\d+) packets\s+(\d+) records and (\d+) packets", t)
rss = int(re.search(r"RSS (\d+)", t).group(1)) / 1024
wall, packets, rps, pps = float(m.group(1)), int(m.group(2)), int(m.group(3)), int(m.group(4))
print(f"| '"$1"' | '"$2"' | '"$recs"' | '"$bytes"' | '"$check"' | {wall:.3f} | {rps} | {packets} | {pps} | {rss:.0f} |")'
}
row "kv $requests requests" "JSON Lines" "$dir/kv_server.jsonl" "$dir/kv_client.jsonl"
row "kv $requests requests" binary "$dir/kv_server.rntrace" "$dir/kv_client.rntrace"
row "ib_write_bw sample" "JSON Lines" "$root/traces/ib_write_bw_server.jsonl" \
  "$root/traces/ib_write_bw_client.jsonl"

#!/bin/bash
# The virtual device's cost (docs/performance.md, "The virtual device"): unmodified perftest on
# `rnicsim serve`, through our libibverbs. For each program it prints the wall-clock time of the
# client, the CPU time serve spent (the simulator's share of the wall time), and what stats.json
# says the model did: goodput from the first doorbell to the last CQE, and the doorbell-to-CQE and
# round-trip latencies. perftest's own figures measure the simulator, not the model: they are
# printed for comparison only.
# Usage: bench_vdev.sh [BUILD_DIR]   (default build/)
set -euo pipefail
cd "$(dirname "$0")/../../.."
build=${1:-build}
rnicsim=$PWD/$build/bin/rnicsim
export SC_COPYRIGHT_MESSAGE=DISABLE
work=$(mktemp -d /tmp/rnicsim-bench-vdev-XXXXXX)
trap 'rm -rf "$work"' EXIT
port=$((20000 + RANDOM % 20000))

run() {  # run NAME PERFTEST_ARGS...
  local name=$1; shift
  local dir=$work/$name
  mkdir -p "$dir"
  /usr/bin/time -f "%e %U %S" -o "$dir/serve.time" \
    "$rnicsim" serve --dir "$dir/s" --out "$dir/out" --exit-after 2 > "$dir/serve.log" 2>&1 &
  local serve=$!
  for _ in $(seq 100); do [ -f "$dir/s/hosts.json" ] && break; sleep 0.1; done
  "$rnicsim" attach host1 --dir "$dir/s" -- "$@" -p $port > "$dir/server.log" 2>&1 &
  local server=$!
  sleep 0.5
  local t0=$(date +%s.%N)
  "$rnicsim" attach host0 --dir "$dir/s" -- "$@" -p $port localhost > "$dir/client.log" 2>&1
  local t1=$(date +%s.%N)
  wait $server
  wait $serve
  port=$((port + 1))
  /usr/bin/python3 - "$name" "$dir" "$t0" "$t1" <<'PY'
import json, sys
name, d, t0, t1 = sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4])
wall, user, syst = (float(x) for x in open(d + "/serve.time").read().split()[-3:])
j = json.load(open(d + "/out/stats.json"))["stats"]
k = j["host0.kernel"]
payload = j["host0.nic.req"]["payload_bytes"]["value"]
span = k["last_completion"]["value"] - k["first_doorbell"]["value"]
lat, rtt = k["send_latency"], k["round_trip"]
print(f"| {name} | {t1 - t0:.2f} | {wall:.2f} | {user + syst:.2f} | "
      f"{payload * 8 / span * 1e3:.2f} | {lat['count']} | {lat.get('p50', 0) / 1e3:.0f} | "
      f"{rtt['count']} | {rtt.get('p50', 0) / 2e3:.0f} |")
PY
  grep -E "^ *[0-9]+ +[0-9]+" "$dir/client.log" | tail -1 | sed "s/^/  perftest's own line: /"
}

echo "| program | client wall (s) | serve wall (s) | serve CPU (s) | model goodput (Gb/s) | send CQEs | doorbell to CQE p50 (ns) | round trips | round trip / 2 p50 (ns) |"
echo "|---|---|---|---|---|---|---|---|---|"
run write_bw ib_write_bw -s 65536 -n ${WRITE_N:-5000}
run send_lat ib_send_lat -n ${LAT_N:-10000}

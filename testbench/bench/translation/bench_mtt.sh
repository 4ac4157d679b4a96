#!/bin/bash
# READ rate against the size of the region read (curve 2 of the translation issue): 64-byte
# READs at random message-aligned offsets in one registered region of 1 MiB to 64 GiB, with the
# application's pages (and so the region's MTT pages) of 4 KiB or 2 MiB, on the ConnectX-5-class
# preset with its context caches (configs/presets/cx5.toml: 16384 page addresses on chip). Once
# the region's page list outgrows the MTT cache, most READs miss, and each miss is a DMA read the
# responder waits for: the rate falls; with 2 MiB pages the list is 512 times shorter.
# Writes mtt.csv and mtt.png into OUT_DIR (default: a temporary folder, printed). Simulated
# results: one run of each point.
#   testbench/bench/translation/bench_mtt.sh [BUILD_DIR] [OUT_DIR] [ITERATIONS]
set -euo pipefail
root=$(cd "$(dirname "$0")/../../.." && pwd)
build=${1:-$root/build}
out=${2:-$(mktemp -d /tmp/rnicsim-mtt-XXXXXX)}
iters=${3:-20000}
mkdir -p "$out"
export SC_COPYRIGHT_MESSAGE=DISABLE
tmp=$(mktemp -d /tmp/rnicsim-mtt-run-XXXXXX)
trap 'rm -rf "$tmp"' EXIT
run() {  # region, page size: prints "Mmsg/s mtt_misses"
  "$build/bin/rnicsim" run "$root/configs/presets/cx5.toml" --no-plots --out "$tmp" \
    --set run.workloads=read_bw --set capture.pcap=false --set read_bw.size=64 \
    --set read_bw.region="$1" --set host.page_size="$2" --set read_bw.iterations="$iters" \
    >/dev/null
  /usr/bin/python3 -c '
import json, sys
j = json.load(open(sys.argv[1]))
w = j["run"]["workloads"]["read_bw"]
assert w["ok"], w
print(w["msg_rate_mpps"], j["stats"]["host1.nic.cache"]["mtt_misses"]["value"])' "$tmp/stats.json"
}
csv=$out/mtt.csv
echo "region_bytes,page,rate_mmsgs,mtt_misses" > "$csv"
echo "| region | 4 KiB pages: Mmsg/s, MTT misses | 2 MiB pages |"
echo "|---|---|---|"
for r in 1MiB 4MiB 16MiB 64MiB 256MiB 1GiB 4GiB 16GiB 64GiB; do
  line="| $r |"
  for p in 4KiB 2MiB; do
    read -r rate misses <<<"$(run "$r" "$p")"
    bytes=$(/usr/bin/python3 -c "
import sys; v=sys.argv[1]; u={'MiB':1<<20,'GiB':1<<30}
print(int(v[:-3])*u[v[-3:]])" "$r")
    echo "$bytes,$p,$rate,$misses" >> "$csv"
    line="$line $(printf '%.2f' "$rate"), $misses |"
  done
  echo "$line"
done
/usr/bin/python3 "$root/testbench/bench/translation/plot_mtt.py" "$csv" "$out/mtt.png"
echo
echo "wrote $csv and $out/mtt.png"

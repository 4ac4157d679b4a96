#!/bin/bash
# The IOTLB cliff, as pcie-bench measured it (Neugebauer et al., SIGCOMM 2018, Figure 9 and the
# raw data in github.com/pcie-bench/data): 64-byte DMA reads at random offsets in a window of
# host memory of 64 KiB to 64 MiB, with the IOMMU off, on with 4 KiB pages, and on with 2 MiB
# pages. Two measures per point, as pcie-bench's two tests:
#   rate:    requests per second with dma_bench.outstanding (default 32) in flight (BW_RD);
#   latency: the median of one request at a time (LAT_RD).
# Writes iotlb.csv and iotlb.png (the model against pcie-bench's Haswell E5-2620v3 numbers) into
# OUT_DIR (default: a temporary folder, printed). Simulated results: one run of each.
#   testbench/bench/pcie/bench_iotlb.sh [BUILD_DIR] [OUT_DIR]
set -euo pipefail
root=$(cd "$(dirname "$0")/../../.." && pwd)
build=${1:-$root/build}
out=${2:-$(mktemp -d /tmp/rnicsim-iotlb-XXXXXX)}
mkdir -p "$out"
export SC_COPYRIGHT_MESSAGE=DISABLE
tmp=$(mktemp -d /tmp/rnicsim-iotlb-run-XXXXXX)
trap 'rm -rf "$tmp"' EXIT
run() {  # window, iommu (off|4KiB|2MiB), outstanding, iterations: prints "Mtps p50_ns"
  local w=$1 m=$2 o=$3 n=$4
  local mmu=(--set iommu.enabled=false) page=4KiB
  if [ "$m" != off ]; then mmu=(--set iommu.enabled=true); page=$m; fi
  "$build/bin/rnicsim" run "$root/configs/default.toml" --no-plots --out "$tmp" \
    --set run.workloads=dma_bench --set capture.pcap=false --set dma_bench.size=64 \
    --set dma_bench.window="$w" --set dma_bench.page_size="$page" \
    --set dma_bench.outstanding="$o" --set dma_bench.iterations="$n" "${mmu[@]}" >/dev/null
  /usr/bin/python3 -c '
import json, sys
j = json.load(open(sys.argv[1]))["run"]["workloads"]["dma_bench"]
assert j["ok"], j
print(j["request_rate_mtps"], j["latency_ns"]["p50"])' "$tmp/stats.json"
}
csv=$out/iotlb.csv
echo "window_bytes,iommu,rate_mtps,latency_p50_ns" > "$csv"
echo "| window | IOMMU off: M/s, p50 ns | 4 KiB pages | 2 MiB pages |"
echo "|---|---|---|---|"
for w in 64KiB 128KiB 256KiB 512KiB 1MiB 2MiB 4MiB 8MiB 16MiB 32MiB 64MiB; do
  line="| $w |"
  for m in off 4KiB 2MiB; do
    read -r rate _ <<<"$(run "$w" "$m" 32 100000)"
    read -r _ lat <<<"$(run "$w" "$m" 1 20000)"
    bytes=$(/usr/bin/python3 -c "
import sys; v=sys.argv[1]; u={'KiB':1024,'MiB':1<<20}
print(int(v[:-3])*u[v[-3:]])" "$w")
    echo "$bytes,$m,$rate,$lat" >> "$csv"
    line="$line $(printf '%.1f' "$rate"), $(printf '%.0f' "$lat") |"
  done
  echo "$line"
done
/usr/bin/python3 "$root/testbench/bench/pcie/plot_iotlb.py" "$csv" "$out/iotlb.png"
echo
echo "wrote $csv and $out/iotlb.png"

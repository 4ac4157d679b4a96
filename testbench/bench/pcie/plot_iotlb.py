#!/usr/bin/python3
"""Plot bench_iotlb.sh's CSV: 64-byte random DMA reads against the window, IOMMU off / 4 KiB /
2 MiB pages, the model (lines) against pcie-bench's measurements (points).

The measurements: github.com/pcie-bench/data, NFP6000 at 1.2 GHz in a Haswell Xeon E5-2620v3
(dell-t630), files bw_dma_win_sweep_rd_rnd_64.csv (Trans/s, cache "Cold") and
lat_dma_sweep_rd_rnd_64.csv (median, "Cold") of the folders without IOMMU, "-iommu" (superpages
allowed: 2 MiB mappings) and "-iommu-nosp" (4 KiB pages only). Rounded to 0.1 M/s and 1 ns.

Usage: /usr/bin/python3 plot_iotlb.py iotlb.csv [iotlb.png]
"""
import csv
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

KIB, MIB = 1024, 1 << 20
# window bytes -> M transactions per second
PCIE_BENCH_RATE = {
    "off": {4 * KIB: 53.8, 16 * KIB: 55.9, 256 * KIB: 55.0, 512 * KIB: 54.6, 1 * MIB: 54.7,
            2 * MIB: 55.2, 4 * MIB: 55.4, 8 * MIB: 55.6, 16 * MIB: 55.8, 32 * MIB: 55.8,
            64 * MIB: 55.8},
    "2MiB": {4 * KIB: 54.0, 16 * KIB: 56.1, 256 * KIB: 55.1, 512 * KIB: 54.7, 1 * MIB: 54.8,
             2 * MIB: 55.3, 4 * MIB: 55.6, 8 * MIB: 55.7, 16 * MIB: 55.9, 32 * MIB: 56.0,
             64 * MIB: 56.0},
    "4KiB": {4 * KIB: 53.9, 16 * KIB: 56.0, 256 * KIB: 55.0, 512 * KIB: 43.1, 1 * MIB: 29.6,
             2 * MIB: 23.9, 4 * MIB: 21.5, 8 * MIB: 20.5, 16 * MIB: 20.0, 32 * MIB: 19.8,
             64 * MIB: 19.6},
}
# window bytes -> median ns, one request at a time
PCIE_BENCH_LAT = {
    "off": {w: 600 for w in (8 * KIB, 64 * KIB, 256 * KIB, 1 * MIB, 4 * MIB, 16 * MIB, 64 * MIB)},
    "2MiB": {w: 600 for w in (8 * KIB, 64 * KIB, 256 * KIB, 1 * MIB, 4 * MIB, 16 * MIB, 64 * MIB)},
    "4KiB": {8 * KIB: 600, 64 * KIB: 600, 256 * KIB: 600, 512 * KIB: 600, 1 * MIB: 813,
             2 * MIB: 827, 4 * MIB: 827, 16 * MIB: 827, 64 * MIB: 827},
}
LABEL = {"off": "IOMMU off", "4KiB": "IOMMU, 4 KiB pages", "2MiB": "IOMMU, 2 MiB pages"}
COLOR = {"off": "black", "4KiB": "tab:red", "2MiB": "tab:blue"}


def main():
    src = sys.argv[1]
    dst = sys.argv[2] if len(sys.argv) > 2 else src.rsplit(".", 1)[0] + ".png"
    with open(src) as f:
        rows = list(csv.DictReader(f))
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(14, 5))
    for m in ("off", "4KiB", "2MiB"):
        rs = [r for r in rows if r["iommu"] == m]
        w = [int(r["window_bytes"]) / KIB for r in rs]
        a1.plot(w, [float(r["rate_mtps"]) for r in rs], "-", color=COLOR[m],
                label=f"model, {LABEL[m]}")
        a2.plot(w, [float(r["latency_p50_ns"]) for r in rs], "-", color=COLOR[m],
                label=f"model, {LABEL[m]}")
        ref = PCIE_BENCH_RATE[m]
        a1.plot([k / KIB for k in ref], list(ref.values()), "o", color=COLOR[m], fillstyle="none",
                label=f"pcie-bench, {LABEL[m]}")
        ref = PCIE_BENCH_LAT[m]
        a2.plot([k / KIB for k in ref], list(ref.values()), "o", color=COLOR[m], fillstyle="none",
                label=f"pcie-bench, {LABEL[m]}")
    a1.set_title("64 B random DMA reads: rate (requests in flight)")
    a1.set_ylabel("M requests / s")
    a2.set_title("64 B random DMA reads: median latency (one at a time)")
    a2.set_ylabel("ns")
    for a in (a1, a2):
        a.set_xscale("log", base=2)
        a.set_xlabel("window (KiB)")
        a.set_ylim(bottom=0)
        a.grid(True, which="both", alpha=0.3)
        a.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(dst, dpi=110)


if __name__ == "__main__":
    main()

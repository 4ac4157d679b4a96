#!/usr/bin/python3
"""Plot the CSV of bench_pcie_sawtooth: bandwidth vs transfer size.

Usage: /usr/bin/python3 plot_sawtooth.py pcie_sawtooth.csv [pcie_sawtooth.png]
"""
import csv
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main():
    src = sys.argv[1] if len(sys.argv) > 1 else "pcie_sawtooth.csv"
    dst = sys.argv[2] if len(sys.argv) > 2 else src.rsplit(".", 1)[0] + ".png"
    with open(src) as f:
        title = f.readline().lstrip("# ").strip()
        rows = list(csv.DictReader(f))
    size = [int(r["size"]) for r in rows]
    fig, axes = plt.subplots(2, 2, figsize=(15, 9))
    series = (("misalign64", "misaligned by 64 B", "tab:green", "-", 0.9),
              ("misalign1", "misaligned by 1 B", "tab:orange", "-", 0.9),
              ("aligned", "aligned", "black", "--", 1.0))
    for row, op in enumerate(("write", "read")):
        for col, (lo, hi, log) in enumerate(((1, 8192, True), (1, 1100, False))):
            ax = axes[row][col]
            idx = [i for i, s in enumerate(size) if lo <= s <= hi]
            for suffix, label, color, style, width in series:
                ys = [float(rows[i][f"{op}_{suffix}"]) for i in idx]
                ax.plot([size[i] for i in idx], ys, style, color=color, linewidth=width,
                        label=label)
            ax.set_ylabel(f"DMA {op} bandwidth (Gb/s)")
            if log:
                ax.set_xscale("log", base=2)
            else:
                ax.set_ylim(bottom=80)
                ax.set_xticks(range(0, hi + 1, 128))
                ax.set_title(f"{op}: zoom on 1..{hi} B")
            ax.grid(True, which="both", linewidth=0.3)
            ax.legend(loc="lower right")
    for ax in axes[-1]:
        ax.set_xlabel("transfer size (bytes)")
    fig.suptitle(f"rnicsim PCIe LinkTiming: {title}")
    fig.tight_layout()
    fig.savefig(dst, dpi=110)
    print(f"wrote {dst}")


if __name__ == "__main__":
    main()

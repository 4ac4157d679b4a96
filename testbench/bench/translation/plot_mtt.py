#!/usr/bin/python3
"""Plot bench_mtt.sh's CSV: 64-byte READ rate against the size of the region read, with 4 KiB
and 2 MiB pages, and the MTT cache's reach for each (16384 page addresses in the cx5 preset).

Usage: /usr/bin/python3 plot_mtt.py mtt.csv [mtt.png] [MTT_ENTRIES]
"""
import csv
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main():
    src = sys.argv[1]
    dst = sys.argv[2] if len(sys.argv) > 2 else src.rsplit(".", 1)[0] + ".png"
    entries = int(sys.argv[3]) if len(sys.argv) > 3 else 16384
    rows = list(csv.DictReader(open(src)))
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for page, page_bytes, style in (("4KiB", 4096, "o-"), ("2MiB", 2 << 20, "s-")):
        pts = sorted((int(r["region_bytes"]), float(r["rate_mmsgs"])) for r in rows
                     if r["page"] == page)
        if not pts:
            continue
        line, = ax.plot([p[0] for p in pts], [p[1] for p in pts], style,
                        label=f"{page[:-3]} {page[-3:]} pages")
        ax.axvline(entries * page_bytes, color=line.get_color(), linestyle=":", linewidth=1)
    ax.set_xscale("log", base=2)
    ax.set_xlabel("region read at random (bytes; dotted: the MTT cache's reach)")
    ax.set_ylabel("64-byte READs (M/s)")
    ax.set_ylim(bottom=0)
    ax.set_title("READ rate against region size: MTT cache misses (cx5 preset)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(dst, dpi=120)


if __name__ == "__main__":
    main()

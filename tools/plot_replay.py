#!/usr/bin/python3
"""Plot of one `rnicsim replay`: reads OUT/replay_latency.csv (each signaled send WR's completion
latency, post to poll, as recorded and in the model) and writes OUT/replay_latency.png: the
distribution of both, one panel per operation. Called by `rnicsim replay` at the end; can be run
by hand: plot_replay.py OUT"""
import csv
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def cdf(values):
    xs = sorted(values)
    return xs, [(i + 1) / len(xs) for i in range(len(xs))]


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: plot_replay.py OUT_DIR")
    out = Path(sys.argv[1])
    src = out / "replay_latency.csv"
    ops = {}
    with src.open() as f:
        for row in csv.DictReader(f):
            o = ops.setdefault(row["op"], {"recorded": [], "model": []})
            for k, col in (("recorded", "recorded_ns"), ("model", "model_ns")):
                if row[col]:
                    o[k].append(int(row[col]))
    ops = {k: v for k, v in ops.items() if v["recorded"] or v["model"]}
    if not ops:
        print(f"plot_replay.py: {src} has no completed operation: nothing to plot")
        return
    fig, axes = plt.subplots(len(ops), 1, figsize=(7, 3 * len(ops)), squeeze=False)
    for ax, (name, o) in zip(axes[:, 0], sorted(ops.items())):
        for k, style in (("recorded", "-"), ("model", "--")):
            if o[k]:
                xs, ys = cdf(o[k])
                ax.plot(xs, ys, style, drawstyle="steps-post", label=f"{k} ({len(xs)})")
        ax.set_xscale("log")
        ax.set_xlabel("completion latency, post to poll (ns)")
        ax.set_ylabel("fraction of WRs")
        ax.set_title(name)
        ax.grid(True, alpha=0.3)
        ax.legend()
    fig.tight_layout()
    dst = out / "replay_latency.png"
    fig.savefig(dst, dpi=100)
    print(f"plot_replay.py: wrote {dst}")


if __name__ == "__main__":
    main()

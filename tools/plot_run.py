#!/usr/bin/python3
"""Plots of one rnicsim run: reads OUT/stats.json, writes PNG files into OUT. Called by
`rnicsim run` at the end; can be run by hand: plot_run.py OUT"""
import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: plot_run.py OUT_DIR")
    out = Path(sys.argv[1])
    stats = json.loads((out / "stats.json").read_text())
    run = stats["run"]
    written = []

    # Latency distribution of each latency workload (one way for WRITE and SEND, the whole round
    # trip for READ and atomics: latency_measure): every sample, from the histogram in stats.json
    # (latency_<name>.csv holds only the first capture.latency_csv of them).
    for name, w in run["workloads"].items():
        bins = w.get("latency_histogram", {}).get("bins_ns", [])
        total = sum(n for _, n in bins)
        if not total:
            continue
        xs, ys, seen = [], [], 0
        for lo, n in bins:
            seen += n
            xs.append(lo)
            ys.append(seen / total)
        fig, ax = plt.subplots(figsize=(7, 4))
        ax.plot(xs, ys, drawstyle="steps-post")
        measure = "round-trip" if w.get("latency_measure") == "round_trip" else "one-way"
        ax.set_xlabel(f"{measure} latency (ns; bins of 1 ns, 1/65536 of the value above 131 us)")
        ax.set_ylabel("fraction of round trips")
        ax.set_title(f"{name}: {w['size_bytes']} B, p50 {w['latency_ns']['p50']:.0f} ns, "
                     f"p99 {w['latency_ns']['p99']:.0f} ns ({total} round trips)")
        ax.grid(True, alpha=0.3)
        p = out / f"latency_{name}.png"
        fig.tight_layout()
        fig.savefig(p, dpi=100)
        plt.close(fig)
        written.append(p)

    # Goodput of each bandwidth workload against the line rate and the RoCEv2 limit.
    bw = {n: w for n, w in run["workloads"].items() if "goodput_gbps" in w}
    if bw:
        rate = float(stats["config"]["link.rate"].replace("Gbps", "")) if "Gbps" in stats["config"]["link.rate"] else None
        fig, ax = plt.subplots(figsize=(7, 4))
        names = list(bw)
        ax.bar(names, [bw[n]["goodput_gbps"] for n in names], color="tab:blue", label="goodput")
        top = max(bw[n]["goodput_gbps"] for n in names)
        for n in names:  # the message rate too: what an atomic or a small message test measures
            inside = bw[n]["goodput_gbps"] > top / 2  # in a tall bar, under its top
            ax.annotate(f"{bw[n]['msg_rate_mpps']:.3g} Mmsg/s", (n, bw[n]["goodput_gbps"]),
                        textcoords="offset points", xytext=(0, -12 if inside else 3),
                        ha="center", fontsize=8, color="white" if inside else "black")
        if rate:
            ax.axhline(rate, color="gray", linestyle="--", label=f"line rate {rate:g} Gb/s")
            for n in names:
                if n.startswith("atomic"):  # 8 bytes per round trip: no wire limit to show
                    continue
                mtu = bw[n]["mtu_bytes"]
                size = bw[n]["size_bytes"]
                pkts = max(1, -(-size // mtu))
                # Per message: a WRITE's RETH; a READ's responses carry an AETH on the first and
                # the last (the only one: one AETH).
                extra = 16 if n.startswith("write") else 4 * min(pkts, 2) if n.startswith("read") else 0
                wire = size + pkts * 82 + extra
                ax.plot([n], [rate * size / wire], marker="_", markersize=40, color="tab:red")
            ax.plot([], [], color="tab:red", label="RoCEv2 limit (headers, preamble, IFG)")
        ax.set_ylabel("Gb/s")
        ax.set_title("bandwidth workloads")
        ax.legend(loc="lower right")
        p = out / "goodput.png"
        fig.tight_layout()
        fig.savefig(p, dpi=100)
        plt.close(fig)
        written.append(p)

    # Utilisation of each link and PCIe direction over the whole run.
    util = {}
    for g, entries in stats["stats"].items():
        for k, v in entries.items():
            if k.endswith("utilisation"):
                util[f"{g}.{k.replace('_utilisation', '')}"] = v["value"]
    if util:
        fig, ax = plt.subplots(figsize=(8, 0.4 * len(util) + 1.5))
        ax.barh(list(util), list(util.values()), color="tab:green")
        ax.set_xlim(0, 1)
        ax.set_xlabel("busy time / simulated time")
        ax.set_title("link and PCIe utilisation (whole run)")
        p = out / "utilisation.png"
        fig.tight_layout()
        fig.savefig(p, dpi=100)
        plt.close(fig)
        written.append(p)
    for p in written:
        print(f"  wrote {p}")


if __name__ == "__main__":
    main()

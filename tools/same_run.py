#!/usr/bin/python3
"""Checks that two rnicsim binaries give the same results: runs the same scenarios with each and
compares the wire.pcap bytes and every statistic (wall-clock figures aside). For restructurings
that must change nothing observable.

  tools/same_run.py OLD_BIN NEW_BIN [--rename OLD_GROUP.NAME=NEW_GROUP.NAME ...]
                    [--new-set KEY=VALUE ...]

Counters that exist only in NEW are listed, not counted as differences; --rename maps counters
that moved (group suffixes, e.g. nic.resp.frames=nic.rx.frames). --new-set gives NEW alone a
setting, to make it behave as OLD (e.g. host.driver_interface=1: a version-1 driver on the
version-2 device). Exit 0 if all the same."""
import argparse
import filecmp
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCENARIOS = {
    "default": [],
    "send_bw_sges": ["run.workloads=send_bw", "send_bw.qps=8", "send_bw.size=10000",
                     "send_bw.iterations=300", "send_bw.sges=3", "send_bw.mtu=1024B"],
    "imm": ["run.workloads=write_lat,send_bw", "write_lat.imm=true", "write_lat.size=5000",
            "send_bw.imm=true", "send_bw.size=1B"],
    "many_qps": ["run.workloads=write_bw", "write_bw.qps=64", "write_bw.size=8KiB",
                 "write_bw.iterations=200", "write_bw.mtu=256B", "nic.max_unacked_psn=16"],
    "lat_mtu_512": ["run.workloads=write_lat,send_lat", "write_lat.size=3000",
                    "send_lat.size=2000", "write_lat.mtu=512B", "send_lat.mtu=512B"],
    # Binaries from before the READ and atomic workloads cannot run this one.
    "read_atomic": ["run.workloads=read_bw,atomic_bw,read_lat,atomic_lat", "read_bw.qps=4",
                    "read_bw.size=10000", "read_bw.mtu=1024B", "read_bw.iterations=300",
                    "atomic_bw.qps=4", "atomic_bw.iterations=300",
                    "atomic_lat.atomic_type=CMP_AND_SWAP"],
}


def flat(path):
    out = {}

    def rec(p, x):
        if isinstance(x, dict):
            if "value" in x and not isinstance(x["value"], dict):
                out[p] = x["value"]
                return
            for k, v in x.items():
                if k not in ("unit", "desc"):
                    rec(f"{p}.{k}" if p else k, v)
        elif isinstance(x, list):
            out[p] = json.dumps(x)
        else:
            out[p] = x

    rec("", json.load(open(path)))
    return {k: v for k, v in out.items()
            if "wall" not in k and "systemc_activations" not in k and not k.startswith("config")}


def run(binary, name, sets, out):
    cmd = [binary, "run", str(ROOT / "configs/default.toml"), "--no-plots", "--out", str(out)]
    for s in sets:
        cmd += ["--set", s]
    subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   env={"SC_COPYRIGHT_MESSAGE": "DISABLE", "PATH": "/usr/bin:/bin"})


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("old")
    ap.add_argument("new")
    ap.add_argument("--rename", action="append", default=[])
    ap.add_argument("--new-set", action="append", default=[])
    a = ap.parse_args()
    ren = [r.split("=", 1) for r in a.rename]
    bad = 0
    with tempfile.TemporaryDirectory() as tmp:
        for name, sets in SCENARIOS.items():
            o, n = Path(tmp, "old", name), Path(tmp, "new", name)
            run(a.old, name, sets, o)
            run(a.new, name, sets + a.new_set, n)
            if not (o / "stats.json").exists() or not (n / "stats.json").exists():
                print(f"{name}: a run wrote no stats.json")
                bad += 1
                continue
            same_pcap = filecmp.cmp(o / "wire.pcap", n / "wire.pcap", shallow=False)
            x = {}
            for k, v in flat(o / "stats.json").items():
                for old_s, new_s in ren:
                    if k.endswith("." + old_s):
                        k = k[: -len(old_s)] + new_s
                x[k] = v
            y = flat(n / "stats.json")
            diffs = [k for k in sorted(set(x) | set(y)) if k in x and x[k] != y.get(k)]
            new_only = [k for k in sorted(y) if k not in x]
            print(f"{name}: pcap {'same' if same_pcap else 'DIFFERENT'}, "
                  f"{len(x) - len(diffs)} statistics same, {len(diffs)} different, "
                  f"{len(new_only)} new")
            for k in diffs:
                print(f"  {k}: {x[k]} -> {y.get(k, '(gone)')}")
            bad += len(diffs) + (0 if same_pcap else 1)
    print("same results" if bad == 0 else f"{bad} differences")
    return 0 if bad == 0 else 1


if __name__ == "__main__":
    sys.exit(main())

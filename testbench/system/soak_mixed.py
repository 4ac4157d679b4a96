#!/usr/bin/python3
"""Soak: the `mixed` workload over 8 QPs and a faulty link (1% loss, 0.1% corruption, 1%
reordering), 10^5 messages, with the RC protocol checker on. The run must pass its own checks
(every byte written, sent and read against its message's pattern, every atomic value, every WQE
and receive completed exactly once) and the NIC must have recovered from the faults
(retransmissions > 0). Timings are printed, never compared.

usage: soak_mixed.py RNICSIM CONFIG MODE [key=value]...
  MODE send_write: WRITE, WRITE with immediate, SEND, SEND with immediate
  MODE all:        every operation: READ, FETCH_ADD and CMP_SWAP too
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile

OPS = {"send_write": "write,write_imm,send,send_imm",
       "all": "write,write_imm,send,send_imm,read,fetch_add,cmp_swap"}


def main():
    if len(sys.argv) < 4 or sys.argv[3] not in OPS:
        print(__doc__)
        return 2
    rnicsim, config, mode = sys.argv[1:4]
    out = tempfile.mkdtemp(prefix=f"rnicsim_soak_{mode}_")
    sets = ["run.workloads=mixed", "mixed.qps=8", "mixed.iterations=12500", "mixed.size=64KiB",
            "mixed.tx_depth=64", "mixed.rx_depth=128", "mixed.seed=7", f"mixed.ops={OPS[mode]}",
            "mixed.timeout=10", "link.loss=0.01", "link.corrupt=0.001", "link.reorder=0.01",
            "link.seed=11", "link.check=true", "capture.pcap=false", "capture.faults_csv=0"]
    sets += sys.argv[4:]
    cmd = [rnicsim, "run", config, "--out", out, "--no-plots"]
    for s in sets:
        cmd += ["--set", s]
    env = dict(os.environ, SC_COPYRIGHT_MESSAGE="DISABLE")
    p = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    report = [l for l in p.stdout.splitlines() if not l.lstrip()[:1].isdigit()]
    print("\n".join(report))
    try:
        j = json.load(open(os.path.join(out, "stats.json")))
    except OSError:
        print(f"FAIL: no stats.json (exit {p.returncode}): {p.stderr.strip()}")
        return 1
    run, stats = j["run"], j["stats"]
    w = run["workloads"]["mixed"]
    req = stats["host0.nic.req"]
    link = stats["link0"]
    lost = link["a_to_b_dropped"]["value"] + link["b_to_a_dropped"]["value"]
    print(f"soak {mode}: {w['messages']} messages, {w['send_completions']} send and "
          f"{w['receive_completions']} receive completions, {w['verified_bytes']} bytes verified; "
          f"{lost} frames lost, {req['retransmitted']['value']} packets retransmitted, "
          f"{req['timeouts']['value']} ACK timeouts; simulated {run['sim_time_ps'] / 1e9:.1f} ms, "
          f"wall {run['wall_seconds']:.1f} s, "
          f"{run['packets_per_wall_second']:.0f} packets per wall-second")
    if not run["ok"]:
        print(f"FAIL: {run.get('error')}")
        return 1
    problems = []
    per_op = w["per_op"]
    receivers = sum(per_op[k]["messages"] for k in ("send", "send_imm", "write_imm"))
    if p.returncode != 0 or "result: OK" not in p.stdout:
        problems.append(f"exit {p.returncode}")
    if not w["ok"] or w["messages"] < 100000:
        problems.append(f"workload ok={w['ok']}, {w['messages']} messages")
    if w["send_completions"] != w["messages"]:
        problems.append(f"{w['send_completions']} send completions for {w['messages']} WQEs")
    if w["receive_completions"] != receivers:
        problems.append(f"{w['receive_completions']} receive completions for {receivers} messages")
    if sum(per_op[k]["messages"] for k in per_op) != w["messages"]:
        problems.append("the per-operation counts do not add up to the messages")
    if w["verified_bytes"] < w["bytes"]:
        problems.append(f"{w['verified_bytes']} bytes verified of {w['bytes']}")
    if stats["link0.check"]["violations"]["value"] != 0:
        problems.append("protocol violations")
    if lost == 0 or link["a_to_b_reordered"]["value"] + link["b_to_a_reordered"]["value"] == 0:
        problems.append("the link injected no loss or no reordering")
    if req["retransmitted"]["value"] == 0:
        problems.append("no retransmission: nothing was recovered")
    if problems:
        print("FAIL: " + "; ".join(problems) + f" (outputs kept in {out})")
        return 1
    shutil.rmtree(out, ignore_errors=True)
    print("PASS")
    return 0


if __name__ == "__main__":
    sys.exit(main())

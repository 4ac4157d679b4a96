#!/usr/bin/python3
"""Replay tests (`rnicsim replay`) on hand-built trace pairs (traces.py): check_replay.py RNICSIM
MODE. Each mode builds its traces in a fresh folder, runs the replay and asserts on its exit
status, report, stats.json and replay_latency.csv."""
import csv
import json
import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import traces  # noqa: E402

RNICSIM, MODE = sys.argv[1], sys.argv[2]
DIR = tempfile.mkdtemp(prefix=f"rn_replay_{MODE}_")


def fail(why):
    print(f"FAIL ({MODE}): {why}\n(kept {DIR})")
    sys.exit(1)


def check(cond, why):
    if not cond:
        fail(why)


def run(*args, expect=0):
    env = dict(os.environ, SC_COPYRIGHT_MESSAGE="DISABLE")
    p = subprocess.run([RNICSIM, "replay", *args, "--no-plots"], capture_output=True, text=True,
                       env=env, timeout=300)
    print(f"$ rnicsim replay {' '.join(args)}  -> exit {p.returncode}")
    print(p.stdout[-3000:], p.stderr[-3000:])
    check(p.returncode == expect, f"exit status {p.returncode}, expected {expect}")
    return p


def files(s, c, payload="none", s_end=True):
    sp, cp = os.path.join(DIR, "server.jsonl"), os.path.join(DIR, "client.jsonl")
    traces.write(sp, 100, s, payload, end=s_end)
    traces.write(cp, 200, c, payload)
    return sp, cp


def stats(out):
    with open(os.path.join(out, "stats.json")) as f:
        return json.load(f)


def replay_group(st, host):
    g = st["stats"][f"{host}.replay"]
    return {k: v["value"] for k, v in g.items()}


def rows(out):
    with open(os.path.join(out, "replay_latency.csv")) as f:
        return list(csv.DictReader(f))


def span(out, host):
    return replay_group(stats(out), host)["sim_time"]


def recorded_gaps(records):
    """The sum of the gaps replay keeps (not before polls): ns."""
    total = 0
    for prev, r in zip(records, records[1:]):
        if r["call"] not in ("poll_cq", "get_cq_event"):
            total += max(0, r["t"] - (prev["t"] + prev["d"]))
    return total


out = os.path.join(DIR, "out")
if MODE == "pair":
    sp, cp = files(*traces.pair())
    p = run(sp, cp, "--out", out)
    check("result: OK" in p.stdout, "the replay did not end OK")
    g0, g1 = replay_group(stats(out), "host0"), replay_group(stats(out), "host1")
    check(g1["send_wrs"] == 2 and g1["send_bytes"] == 12288, f"host1 posted {g1}")
    check(g0["recv_wrs"] == 1 and g0["completions"] == 1, f"host0 {g0}")
    check(g1["completions"] == 2 and g1["completion_mismatches"] == 0, f"host1 {g1}")
    check(g0["records"] == 15 and g1["records"] == 17, f"records {g0['records']} {g1['records']}")
    rs = rows(out)
    check([r["op"] for r in rs] == ["WRITE", "SEND"], f"csv rows {rs}")
    for r in rs:
        check(r["model_status"] == "SUCCESS" and int(r["model_ns"]) > 0, f"model {r}")
        check(int(r["recorded_ns"]) == 10100, f"recorded latency {r}")  # poll end - post entry
    check(os.path.getsize(os.path.join(out, "wire.pcap")) > 8192 + 4096, "no packets in the pcap")
elif MODE == "timing":
    s, c = traces.pair()
    sp, cp = files(s, c)
    spans = {}
    for t in ("recorded", "asap", "scale:2"):
        run(sp, cp, "--out", out + t.replace(":", ""), "--timing", t)
        spans[t] = span(out + t.replace(":", ""), "host1")
    gaps = recorded_gaps(c)
    print(f"client spans (ns): {spans}; recorded gaps {gaps}")
    check(spans["recorded"] >= gaps, "recorded timing did not keep the recorded gaps")
    check(spans["scale:2"] >= 2 * gaps, "scale:2 did not double the gaps")
    check(spans["asap"] < gaps / 10, "asap kept gaps")
    p = run(sp, cp, "--timing", "scale:0", expect=2)
    check("scale:" in p.stderr, "a bad --timing was not named")
elif MODE == "payload":
    sp, cp = files(*traces.pair(payload=True), payload="full")
    p = run(sp, cp, "--out", out)
    g0 = replay_group(stats(out), "host0")
    check(g0["memory_checks"] == 1 and g0["memory_mismatches"] == 0,
          f"the server's region after the WRITE and the SEND: {g0}")
    # One byte of the expected contents changed: the replay must see the difference.
    s, c = traces.pair(payload=True)
    for r in s:
        if r["call"] == "dereg_mr":
            b = bytearray.fromhex(r["data"])
            b[5000] ^= 1
            r["data"] = b.hex()
    sp, cp = files(s, c, payload="full")
    p = run(sp, cp, "--out", out)
    g0 = replay_group(stats(out), "host0")
    check(g0["memory_mismatches"] == 1, f"a changed byte was not seen: {g0}")
    check("record 14: mr 1 (8192 bytes): its bytes at dereg_mr differ from the recording (from "
          "byte 5000" in p.stdout,
          "the mismatch was not reported with its record")
elif MODE == "bad_rkey":
    # The client WRITEs with a key the server never had: the recording saw REM_ACCESS_ERR, so
    # must the model (the key is posted as an invalid one). The server's QP goes to the error
    # state with it (an RC responder's access error), so its posted receive is flushed: the
    # recording (hand-made) says SUCCESS, and the replay reports the difference.
    sp, cp = files(*traces.pair(write_rkey=0x999, write_status="REM_ACCESS_ERR"))
    p = run(sp, cp, "--out", out)
    g0, g1 = replay_group(stats(out), "host0"), replay_group(stats(out), "host1")
    check(g1["unmapped_keys"] == 1, f"unmapped keys {g1}")
    check(g1["completion_mismatches"] == 0, "the model's status differs from REM_ACCESS_ERR")
    check([r["model_status"] for r in rows(out)] == ["REM_ACCESS_ERR"], f"{rows(out)}")
    check(g0["completion_mismatches"] == 1, f"the server's flushed receive: {g0}")
    check("record 11: completion of QP 17, wr_id 1: recorded SUCCESS RECV 4096 B, model "
          "WR_FLUSH_ERR" in p.stdout, "the flushed receive was not shown")
elif MODE == "mismatch":
    # The server's receive recorded 4000 bytes, the model gives 4096; the client's SEND
    # completion's length (undefined in verbs for a SEND) is not compared.
    s, c = traces.pair()
    for r in s + c:
        if r["call"] == "poll_cq" and r["wc"][0]["op"] in ("SEND", "RECV"):
            r["wc"][0]["len"] = 4000
    sp, cp = files(s, c)
    p = run(sp, cp, "--out", out)
    g0, g1 = replay_group(stats(out), "host0"), replay_group(stats(out), "host1")
    check(g0["completion_mismatches"] == 1 and g1["completion_mismatches"] == 0, f"{g0} {g1}")
    check("recorded SUCCESS RECV 4000 B, model SUCCESS RECV 4096 B" in p.stdout,
          "the differing completion was not shown")
elif MODE == "limits":
    sp, cp = files(*traces.pair())
    p = run(sp, cp, "--set", "nic.max_mr_size=4096", expect=2)
    check("server.jsonl: record 4: field 'len'" in p.stderr and "nic.max_mr_size" in p.stderr,
          "the limit was not named with the record, field and key")
    p = run(sp, cp, "--set", "nic.max_cqe=8", expect=2)
    check("field 'cqe'" in p.stderr and "nic.max_cqe = 8" in p.stderr, "max_cqe not named")
    sp, cp = files(*traces.pair(qp_type="XRC_SEND"))
    p = run(sp, cp, expect=2)
    check("record 6: field 'type': XRC_SEND QPs are not modelled" in p.stderr,
          "an unmodelled QP type was not refused before the replay")
    s, c = traces.pair()
    c.insert(1, traces.call("open_device", 100500, dev=2, name="mlx5_1"))
    sp, cp = files(s, c)
    p = run(sp, cp, expect=2)
    check("client.jsonl: record 3: field 'dev': a second device open at once" in p.stderr,
          "a trace of two devices was not refused")
elif MODE == "truncated":
    s, c = traces.pair()
    cut = [r["call"] for r in s].index("poll_cq") + 1
    sp, cp = files(s[:cut], c, s_end=False)
    p = run(sp, cp, "--out", out)
    check("truncated" in p.stdout and "result: OK" in p.stdout, "the truncation was not reported")
    check(replay_group(stats(out), "host0")["records"] == cut, "not replayed up to the cut")
    # A cut mid-record too.
    with open(sp) as f:
        text = f.read()
    with open(sp, "w") as f:
        f.write(text[:-20])
    p = run(sp, cp, "--out", out)
    check("cut short" in p.stdout, "a record cut short was not reported")
elif MODE == "bad":
    s, c = traces.pair()
    c[4]["max_send_wr"] = "sixteen"
    sp, cp = files(s, c)
    p = run(sp, cp, expect=2)
    check("client.jsonl: record 6: field 'max_send_wr': must be an unsigned integer" in p.stderr,
          "the bad field was not named")
    p = run(os.path.join(DIR, "nothing.jsonl"), expect=2)
    check("cannot open" in p.stderr, "a missing trace was not named")
elif MODE == "deadlock":
    # The server's RTR names the client's QP before the client made it, while the client waits
    # for the server's setup: no replay order satisfies both. It stops and says where.
    sp, cp = files(*traces.pair(server_rtr_t=8000))
    p = run(sp, cp, "--out", out, expect=1)
    check("replay stopped: host0 waits at record 9 for host1 to make QP 33; host1 waits at "
          "record 2 for host0" in p.stdout, "the stop was not explained")
    # Without cross order the same traces replay: the RTR waits for the client's QP.
    p = run(sp, cp, "--out", out, "--cross-order", "none")
    check("result: OK" in p.stdout, "--cross-order none did not replay")
elif MODE == "one_trace":
    s, c = traces.pair()
    sp, cp = files(s, c)
    p = run(cp, "--out", out, expect=1)
    check("field 'dest_qp': QP 17 is not a QP of a peer trace" in p.stdout,
          "a missing peer was not named")
elif MODE == "samples":
    # The captured samples of traces/ (tools/capture_samples.sh) replay to their end, every
    # recorded WR posted, every recorded completion given with its status.
    root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..")
    for name in ("ib_write_bw", "ib_send_lat", "ib_read_lat", "ibv_rc_pingpong"):
        pair = [os.path.join(root, "traces", f"{name}_{side}.jsonl") for side in ("server", "client")]
        o = os.path.join(DIR, name)
        p = run(*pair, "--out", o)
        check("result: OK" in p.stdout, f"{name}: the replay did not end OK")
        st = stats(o)
        for host, path in zip(("host0", "host1"), pair):
            g = replay_group(st, host)
            recs = [json.loads(x) for x in open(path)]
            ok = [r for r in recs if r.get("ret", 1) == 0 or r["call"] == "poll_cq"]
            wrs = sum(len(r["wr"]) for r in ok if r["call"] == "post_send")
            recv = sum(len(r["wr"]) for r in ok if r["call"] == "post_recv")
            wcs = sum(len(r["wc"]) for r in ok if r["call"] == "poll_cq")
            check((g["send_wrs"], g["recv_wrs"], g["completions"], g["completion_mismatches"]) ==
                  (wrs, recv, wcs, 0), f"{name} {host}: {g}, the trace has {wrs} {recv} {wcs}")
else:
    fail(f"unknown mode {MODE}")
shutil.rmtree(DIR)
print(f"PASS ({MODE})")

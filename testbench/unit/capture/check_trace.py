"""Assertions on verb traces captured by rnicsim capture (check_capture.sh).
Usage: check_trace.py MODE TRACE [PEER_TRACE | ARG]...
Every trace is first checked for the format's general rules (header, end, record count, keys of
the common fields, object ids live when named); then MODE's own expectations."""
import collections
import os
import socket
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import rntrace  # noqa: E402

FNV_BASIS, FNV_PRIME = 0xCBF29CE484222325, 0x100000001B3


def fnv1a(b):
    h = FNV_BASIS
    for x in b:
        h = ((h ^ x) * FNV_PRIME) & 0xFFFFFFFFFFFFFFFF
    return h


def need(cond, what):
    if not cond:
        print("FAIL:", what)
        sys.exit(1)


CREATE = {"open_device": "dev", "create_comp_channel": "ch", "alloc_pd": "pd", "reg_mr": "mr",
          "create_cq": "cq", "create_srq": "srq", "create_ah": "ah", "create_qp": "qp"}
DESTROY = {"close_device": "dev", "destroy_comp_channel": "ch", "dealloc_pd": "pd",
           "dereg_mr": "mr", "destroy_cq": "cq", "destroy_srq": "srq", "destroy_ah": "ah",
           "destroy_qp": "qp"}


def general(path, program):
    recs = rntrace.read(path)
    h = recs[0]
    need(h["call"] == "trace", f"{path}: record 1 is the header")
    for k in ("version", "pid", "argv", "host", "t0_mono", "t0_real", "payload", "source"):
        need(k in h, f"{path}: header has {k}")
    need(h["version"] == 1 and h["source"] == "capture", f"{path}: version 1, source capture")
    need(h["host"] == socket.gethostname(), f"{path}: host {h['host']}")
    need(os.path.basename(h["argv"][0]) == program, f"{path}: argv[0] {h['argv']} is {program}")
    need(h["library"].endswith("libibverbs.so.1"), f"{path}: library {h.get('library')}")
    end = recs[-1]
    need(end["call"] == "end", f"{path}: an end record")
    need(end["records"] == len(recs) - 2, f"{path}: end.records {end['records']} != {len(recs) - 2}")
    # Live ids per kind, with a count: a QP is its qp_num, which two devices of one process may
    # both give (verbs_smoke has QP 2 on each NIC).
    live = {k: collections.Counter() for k in ("dev", "ch", "pd", "mr", "cq", "srq", "ah", "qp")}
    for n, r in enumerate(recs[1:-1], 2):
        for k in ("t", "d", "tid", "ret"):
            need(k in r, f"{path} record {n} ({r['call']}): has {k}")
        c = r["call"]
        # Every object named is live, except the one a creation makes.
        for kind in live:
            if kind in r and not (CREATE.get(c) == kind):
                need(r[kind] in live[kind] or (kind == "ah" and c == "post_send"),
                     f"{path} record {n} ({c}): {kind} {r[kind]} is live")
        if c in CREATE and r["ret"] == 0:
            kind = CREATE[c]
            need(kind == "qp" or r[kind] not in live[kind],
                 f"{path} record {n}: {kind} {r[kind]} is new")
            live[kind][r[kind]] += 1
        if c in DESTROY and r["ret"] == 0:
            live[DESTROY[c]][r[DESTROY[c]]] -= 1
            if live[DESTROY[c]][r[DESTROY[c]]] == 0:
                del live[DESTROY[c]][r[DESTROY[c]]]
        if c in ("post_send", "post_recv", "post_srq_recv"):
            for w in r["wr"]:
                for s in w["sge"]:
                    need(len(s) == 3 and s[0] in live["mr"] or len(s) == 4 and s[0] == 0,
                         f"{path} record {n}: sge {s}")
        if c == "poll_cq":
            need(len(r["wc"]) == max(r["ret"], 0), f"{path} record {n}: ret completions")
    return recs


def calls(recs, name):
    return [r for r in recs if r["call"] == name]


def wrs(recs, op=None):
    return [w for r in calls(recs, "post_send") for w in r["wr"] if op is None or w["op"] == op]


def wcs(recs, op=None):
    return [w for r in calls(recs, "poll_cq") for w in r["wc"] if op is None or w["op"] == op]


def rtr_dest(recs):
    rtr = [r for r in calls(recs, "modify_qp") if r.get("state") == "RTR"]
    need(len(rtr) == 1, f"one modify_qp to RTR (got {len(rtr)})")
    need(rtr[0]["mask"] & (1 << 20) and "av" in rtr[0] and rtr[0]["av"]["is_global"] == 1,
         "RTR sets dest_qp and a global address")
    need(len(rtr[0]["av"]["dgid"]) == 16, "dgid is 16 bytes")
    return rtr[0]["dest_qp"]


def pingpong(srv, cli, iters):
    s, c = general(srv, "ibv_rc_pingpong"), general(cli, "ibv_rc_pingpong")
    for name, recs, peer in (("server", s, c), ("client", c, s)):
        for call in ("open_device", "alloc_pd", "reg_mr", "create_cq", "create_qp"):
            need(len(calls(recs, call)) == 1 and calls(recs, call)[0]["ret"] == 0,
                 f"{name}: one {call}, ret 0")
        qp = calls(recs, "create_qp")[0]
        need(qp["type"] == "RC" and qp["scq"] == qp["rcq"] == 1, f"{name}: an RC QP on CQ 1")
        need(rtr_dest(recs) == calls(peer, "create_qp")[0]["qp"],
             f"{name}: RTR's dest_qp is the peer's QP")
        need(len(wrs(recs, "SEND")) == iters, f"{name}: {iters} SENDs posted "
             f"(got {len(wrs(recs, 'SEND'))})")
        need(len(wcs(recs, "SEND")) == iters and len(wcs(recs, "RECV")) == iters,
             f"{name}: {iters} SEND and {iters} RECV completions")
        need(all(w["status"] == "SUCCESS" for w in wcs(recs)), f"{name}: every completion SUCCESS")
        need(all(r["ret"] == 0 for r in recs[1:-1] if r["call"] != "poll_cq"),
             f"{name}: every call returned 0")
        for call in ("destroy_qp", "destroy_cq", "dereg_mr", "dealloc_pd", "close_device"):
            need(len(calls(recs, call)) == 1, f"{name}: {call}")
    print(f"pingpong: {len(s)} + {len(c)} records OK")


def write_bw(srv, cli, iters):
    s, c = general(srv, "ib_write_bw"), general(cli, "ib_write_bw")
    need(rtr_dest(s) == calls(c, "create_qp")[0]["qp"], "server: RTR dest_qp is the client's QP")
    need(rtr_dest(c) == calls(s, "create_qp")[0]["qp"], "client: RTR dest_qp is the server's QP")
    w = wrs(c, "WRITE")
    need(len(w) == iters, f"client: {iters} WRITEs posted (got {len(w)})")
    need(all("rkey" in x and "raddr" in x for x in w), "client: WRITEs have rkey and raddr")
    signaled = sum(1 for x in w if x["flags"] & 2)
    got = wcs(c, "RDMA_WRITE")
    need(len(got) == signaled and signaled > 0,
         f"client: one RDMA_WRITE completion per signaled WRITE ({len(got)} vs {signaled})")
    need(all(x["status"] == "SUCCESS" for x in wcs(c)), "client: every completion SUCCESS")
    need(not wrs(s), "server: posts no send WR")
    print(f"write_bw: {len(w)} WRITEs, {signaled} signaled, {len(got)} completions OK")


def ext(path, payload):
    r = general(path, "verbs_smoke")
    need(any(x.get("ext") == 1 and x["wc_flags"] for x in calls(r, "create_cq")),
         "a create_cq with ext and wc_flags")
    need(any(x.get("ext") == 1 and x.get("send_ops") for x in calls(r, "create_qp")),
         "a create_qp with ext and send_ops")
    posts = [x for x in calls(r, "post_send") if x.get("ext") == 1]
    ops = [w["op"] for x in posts for w in x["wr"]]
    need("WRITE_IMM" in ops and "FETCH_ADD" in ops and "LOCAL_INV" in ops,
         f"ext posts: WRITE_IMM, FETCH_ADD, LOCAL_INV (got {ops})")
    wimm = [w for x in posts for w in x["wr"] if w["op"] == "WRITE_IMM"][0]
    need(wimm["flags"] & 8 and "imm" in wimm and "rkey" in wimm, "WRITE_IMM: inline, imm, rkey")
    fa = [w for x in posts for w in x["wr"] if w["op"] == "FETCH_ADD"][0]
    need(fa["cmp"] == 2 and len(fa["sge"]) == 1 and fa["sge"][0][2] == 8, "FETCH_ADD: add 2, 8 bytes")
    li = [x for x in posts if x["wr"][0]["op"] == "LOCAL_INV"][0]
    need(li["ret"] != 0, "the refused LOCAL_INV records its error")
    polls = [x for x in calls(r, "poll_cq") if x.get("ext") == 1]
    need(polls and all(x["ret"] == len(x["wc"]) >= 1 for x in polls), "ext polls with completions")
    need(any(w["op"] == "RECV_RDMA_WITH_IMM" and "imm" in w for x in polls for w in x["wc"]),
         "an ext completion of the WRITE_IMM with its imm")
    text = b"written by ibv_wr_rdma_write_imm\0"
    if payload == "none":
        need(all("hash" not in w and "data" not in w for w in wrs(r)), "no payload")
    elif payload == "hash":
        need(wimm.get("hash") == fnv1a(text), f"WRITE_IMM hash {wimm.get('hash')} is FNV-1a")
        need(all("hash" in x for x in calls(r, "reg_mr") + calls(r, "dereg_mr")),
             "reg_mr and dereg_mr carry hash")
    else:
        need(wimm.get("data") == text, f"WRITE_IMM data {wimm.get('data')}")
        for x in calls(r, "reg_mr"):
            need(len(x["data"]) == x["len"], "reg_mr data is the region")
        need(all("data" in x for x in calls(r, "dereg_mr")), "dereg_mr carries data")
        need("hash" not in fa and "data" not in fa, "no payload on an atomic")
    print(f"ext ({payload}): {len(posts)} ext posts {ops}, {len(polls)} ext polls OK")


def payload(srv, cli, mode):
    for path in (srv, cli):
        r = general(path, "ibv_rc_pingpong")
        need(r[0]["payload"] == mode, f"{path}: header payload {mode}")
        for w in wrs(r, "SEND"):
            size = sum(s[2] for s in w["sge"])
            if mode == "hash":
                need(isinstance(w.get("hash"), int), "SEND has hash")
            else:
                need(len(w.get("data", b"")) == size, "SEND data is its bytes")
        for x in calls(r, "reg_mr") + calls(r, "dereg_mr"):
            need(("hash" in x) if mode == "hash" else ("data" in x), f"{x['call']} payload")
        need(all("hash" not in w and "data" not in w
                 for x in calls(r, "post_recv") for w in x["wr"]), "no payload on receives")
    if mode == "full":
        # rc_pingpong -c: both sides' buffers hold the same pattern, so the client's SEND bytes
        # are those the server registered.
        c, s = rntrace.read(cli), rntrace.read(srv)
        need(wrs(c, "SEND")[0]["data"] == wrs(s, "SEND")[0]["data"], "both sides send the same")
    print(f"payload {mode}: OK")


if __name__ == "__main__":
    mode = sys.argv[1]
    if mode == "pingpong":
        pingpong(sys.argv[2], sys.argv[3], int(sys.argv[4]))
    elif mode == "write_bw":
        write_bw(sys.argv[2], sys.argv[3], int(sys.argv[4]))
    elif mode == "ext":
        ext(sys.argv[2], sys.argv[3])
    elif mode == "payload":
        payload(sys.argv[2], sys.argv[3], sys.argv[4])
    else:
        need(False, f"unknown mode {mode}")

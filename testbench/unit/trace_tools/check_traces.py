#!/usr/bin/python3
"""An independent check of rnicsim verb traces (JSON Lines) against docs/traces.md, and of the
trace generators and importers in tools/ that write them. Written from the document, sharing no
code with tools/rntrace.py.

  check_traces.py format FILE...           every record of each file follows docs/traces.md
  check_traces.py pair HOST0 HOST1         both files, then what replay needs between them
  check_traces.py ROOT --list              the test cases (one ctest each)
  check_traces.py ROOT CASE [RNICSIM]      runs one test case (RNICSIM: the built binary)

`format` checks, per file: the header and end records, every call's fields (names, types, the
mask of modify_qp against the attributes given), ids counted from 1 per kind and live when
named, SGEs inside their MR, the QP state order RESET->INIT->RTR->RTS before posts, calls in
the order they returned, and that every signalled send and every receive was completed and
polled exactly once on the right CQ. `pair` checks that every dest_qp names a QP of the other
file that names this one back, every rkey/raddr range lies in an MR of the other file that was
registered before the WR was posted (on the `t0_real + t` clock) and not yet deregistered, and
that no SEND or WRITE_WITH_IMM can arrive before the other side posted a receive for it.
Exit 0 when all is well, 1 with one line per problem (file:record: field: what)."""
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

U = "u"      # unsigned integer
I = "i"      # integer
S = "s"      # string
A = "a"      # array
O = "o"      # object
H = "h"      # hexadecimal text (bytes)

COMMON = {"t": U, "d": U, "tid": U, "ret": I}
CALLS = {  # call -> (required fields, optional fields)
    "open_device": ({"dev": U, "name": S}, {}),
    "close_device": ({"dev": U}, {}),
    "create_comp_channel": ({"dev": U, "ch": U}, {}),
    "destroy_comp_channel": ({"ch": U}, {}),
    "alloc_pd": ({"dev": U, "pd": U}, {}),
    "dealloc_pd": ({"pd": U}, {}),
    "reg_mr": ({"pd": U, "mr": U, "addr": U, "len": U, "access": U, "lkey": U, "rkey": U},
               {"iova": U, "hash": U, "data": H}),
    "dereg_mr": ({"mr": U}, {"hash": U, "data": H}),
    "create_cq": ({"dev": U, "cq": U, "cqe": U, "cqe_out": U, "vec": U},
                  {"ch": U, "ext": U, "wc_flags": U}),
    "destroy_cq": ({"cq": U}, {}),
    "create_qp": ({"pd": U, "qp": U, "type": S, "scq": U, "rcq": U, "max_send_wr": U,
                   "max_recv_wr": U, "max_send_sge": U, "max_recv_sge": U, "max_inline": U,
                   "sig_all": U}, {"srq": U, "ext": U, "send_ops": U}),
    "modify_qp": ({"qp": U, "mask": U}, {}),  # attributes: by mask, below
    "destroy_qp": ({"qp": U}, {}),
    "create_srq": ({"pd": U, "srq": U, "max_wr": U, "max_sge": U, "limit": U}, {}),
    "modify_srq": ({"srq": U, "mask": U}, {"max_wr": U, "limit": U}),
    "destroy_srq": ({"srq": U}, {}),
    "create_ah": ({"pd": U, "ah": U, "av": O}, {}),
    "destroy_ah": ({"ah": U}, {}),
    "post_send": ({"qp": U, "wr": A}, {"bad": U, "ext": U}),
    "post_recv": ({"qp": U, "wr": A}, {"bad": U}),
    "post_srq_recv": ({"srq": U, "wr": A}, {"bad": U}),
    "poll_cq": ({"cq": U, "n": U, "wc": A}, {"empty": U, "ext": U}),
    "req_notify_cq": ({"cq": U, "solicited": U}, {}),
    "get_cq_event": ({"ch": U, "cq": U}, {}),
    "ack_cq_events": ({"cq": U, "n": U}, {}),
    "async_event": ({"event": S}, {"qp": U, "cq": U, "srq": U}),
}
# modify_qp attribute -> (mask bit, type)
QP_ATTRS = {"state": (1 << 0, S), "cur_state": (1 << 1, S), "access": (1 << 3, U),
            "pkey_index": (1 << 4, U), "port": (1 << 5, U), "qkey": (1 << 6, U),
            "av": (1 << 7, O), "mtu": (1 << 8, U), "timeout": (1 << 9, U),
            "retry_cnt": (1 << 10, U), "rnr_retry": (1 << 11, U), "rq_psn": (1 << 12, U),
            "max_rd_atomic": (1 << 13, U), "min_rnr_timer": (1 << 15, U),
            "sq_psn": (1 << 16, U), "max_dest_rd_atomic": (1 << 17, U), "dest_qp": (1 << 20, U)}
STATES = {"RESET", "INIT", "RTR", "RTS", "SQD", "SQE", "ERR"}
SEND_OPS = {"SEND", "SEND_IMM", "WRITE", "WRITE_IMM", "READ", "CMP_SWP", "FETCH_ADD",
            "SEND_INV", "LOCAL_INV", "BIND_MW"}
SEND_WR_KEYS = {"id": U, "op": S, "flags": U, "sge": A, "imm": U, "rkey": U, "raddr": U,
                "cmp": U, "swap": U, "ah": U, "rqpn": U, "rqkey": U, "inv": U, "hash": U,
                "data": H}
WC_KEYS = {"id": U, "status": S, "op": S, "len": U, "qp": U, "src_qp": U, "imm": U,
           "flags": U, "vendor_err": U}
WC_REQUIRED = {"id", "status", "op", "len", "qp", "flags"}
WC_OPS = {"SEND", "RDMA_WRITE", "RDMA_READ", "COMP_SWAP", "FETCH_ADD", "BIND_MW", "LOCAL_INV",
          "RECV", "RECV_RDMA_WITH_IMM", "TSO", "DRIVER1"}
# the completion op a send WR's completion must have
WC_OF = {"SEND": "SEND", "SEND_IMM": "SEND", "SEND_INV": "SEND", "WRITE": "RDMA_WRITE",
         "WRITE_IMM": "RDMA_WRITE", "READ": "RDMA_READ", "CMP_SWP": "COMP_SWAP",
         "FETCH_ADD": "FETCH_ADD", "LOCAL_INV": "LOCAL_INV", "BIND_MW": "BIND_MW"}
AV_KEYS = {"dlid": U, "sl": U, "port": U, "is_global": U}
AV_GLOBAL = {"dgid": H, "sgid_index": U, "hop_limit": U, "tclass": U, "flow_label": U}
HEADER = {"version": U, "pid": U, "argv": A, "host": S, "t0_mono": U, "t0_real": U,
          "payload": S, "source": S}
KINDS = {"dev": "open_device", "ch": "create_comp_channel", "pd": "alloc_pd", "mr": "reg_mr",
         "cq": "create_cq", "srq": "create_srq", "ah": "create_ah"}
DESTROY = {"close_device": "dev", "destroy_comp_channel": "ch", "dealloc_pd": "pd",
           "dereg_mr": "mr", "destroy_cq": "cq", "destroy_srq": "srq", "destroy_ah": "ah"}


def typed(v, ty):
    if ty == U:
        return isinstance(v, int) and not isinstance(v, bool) and v >= 0
    if ty == I:
        return isinstance(v, int) and not isinstance(v, bool)
    if ty == S:
        return isinstance(v, str)
    if ty == A:
        return isinstance(v, list)
    if ty == O:
        return isinstance(v, dict)
    if ty == H:
        return isinstance(v, str) and re.fullmatch(r"(?:[0-9a-f]{2})*", v) is not None
    raise AssertionError(ty)


class Trace:
    """One file, parsed and checked. `errors` lists 'file:record: field: what'."""

    def __init__(self, path):
        self.path = path
        self.errors = []
        self.records = []
        self.qps = {}       # qpn -> {"scq", "rcq", "dest_qp", "created", "state"} (last life)
        self.mrs = []       # {"mr", "rkey", "lo", "hi", "reg", "dereg"} (times on t0_real clock)
        self.posts = []     # (t_real_ret, record, qpn, wr) for every send WR
        self.recvs = []     # (t_real_ret, qpn) for every receive WR
        self.recv_completions = {}  # qpn -> completions of receives
        try:
            with open(path, encoding="utf-8") as f:
                lines = f.read().split("\n")
        except (OSError, UnicodeDecodeError) as e:
            self.err(0, "-", "cannot read: %s" % e)
            return
        if lines and lines[-1] == "":
            lines.pop()
        for n, line in enumerate(lines, 1):
            try:
                rec = json.loads(line)
            except ValueError as e:
                self.err(n, "-", "not JSON: %s" % e)
                return
            if not isinstance(rec, dict):
                self.err(n, "-", "not an object")
                return
            self.records.append(rec)
        self.check()

    def err(self, n, field, what):
        self.errors.append("%s:%d: %s: %s" % (self.path, n, field, what))

    def fields(self, n, rec, required, optional, extra=()):
        for k, ty in required.items():
            if k not in rec:
                self.err(n, k, "missing")
            elif not typed(rec[k], ty):
                self.err(n, k, "bad value %r" % (rec[k],))
        for k, v in rec.items():
            if k in required or k in extra or k.startswith("x_"):
                continue
            if k not in optional:
                self.err(n, k, "not a field of %s" % rec.get("call"))
            elif not typed(v, optional[k]):
                self.err(n, k, "bad value %r" % (v,))

    def check(self):
        recs = self.records
        if not recs:
            self.err(1, "call", "empty file: no header")
            return
        h = recs[0]
        if h.get("call") != "trace":
            self.err(1, "call", "the first record must be the header (call: trace)")
            return
        self.fields(1, h, HEADER, {"library": S}, extra=("call",))
        if h.get("version") != 1:
            self.err(1, "version", "not 1")
        if h.get("payload") not in ("none", "hash", "full"):
            self.err(1, "payload", "not none, hash or full")
        self.t0_real = h.get("t0_real", 0)
        if len(recs) < 2 or recs[-1].get("call") != "end":
            self.err(len(recs), "call", "no end record: truncated")
            body = recs[1:]
        else:
            body = recs[1:-1]
            end = recs[-1]
            self.fields(len(recs), end, {"t": U, "records": U}, {"empty": U}, extra=("call",))
            if end.get("records") != len(body):
                self.err(len(recs), "records", "%r, but %d records lie between header and end"
                         % (end.get("records"), len(body)))
        self.live = {k: set() for k in KINDS}
        self.count = {k: 0 for k in KINDS}
        self.mr_by_id = {}
        self.cq_of = {}
        self.outstanding = {}  # cq -> list of (qpn, wr_id, wc op, is_recv)
        last_ret = 0
        for n, rec in enumerate(body, 2):
            call = rec.get("call")
            if call not in CALLS:
                self.err(n, "call", "unknown call %r" % (call,))
                continue
            req, opt = CALLS[call]
            allowed = dict(opt)
            if call == "modify_qp":
                allowed.update({k: ty for k, (bit, ty) in QP_ATTRS.items()})
            self.fields(n, rec, dict(COMMON, **req), allowed, extra=("call",))
            if any(not typed(rec.get(k), ty) for k, ty in dict(COMMON, **req).items()):
                continue
            if rec["t"] < last_ret:
                self.err(n, "t", "%d: before the previous call returned (%d)"
                         % (rec["t"], last_ret))
            last_ret = rec["t"] + rec["d"]
            getattr(self, "do_" + call, self.do_other)(n, rec)
        for cq, items in self.outstanding.items():
            for qpn, wr_id, op, is_recv in items:
                self.err(len(recs), "wc", "%s %d on QP %d never polled from CQ %d"
                         % ("receive" if is_recv else "signalled send", wr_id, qpn, cq))

    # --- helpers ----------------------------------------------------------------------------
    def ret_real(self, rec):
        return self.t0_real + rec["t"] + rec["d"]

    def need(self, n, kind, ident, field=None):
        if ident not in self.live[kind]:
            self.err(n, field or kind, "%s %r is not live" % (kind, ident))
            return False
        return True

    def create(self, n, rec, kind):
        self.count[kind] += 1
        if rec[kind] != self.count[kind]:
            self.err(n, kind, "%d: ids of %s count from 1 in creation order (expected %d)"
                     % (rec[kind], kind, self.count[kind]))
        self.live[kind].add(rec[kind])

    def check_sges(self, n, sges, field):
        for i, s in enumerate(sges):
            f = "%s[%d]" % (field, i)
            if not (isinstance(s, list) and len(s) in (3, 4) and all(typed(x, U) for x in s)):
                self.err(n, f, "an SGE is [mr, off, len] or [0, addr, len, lkey]")
                continue
            if s[0] == 0:
                if len(s) != 4:
                    self.err(n, f, "an SGE naming no MR is [0, addr, len, lkey]")
                continue
            if len(s) != 3:
                self.err(n, f, "an SGE naming MR %d has 3 entries" % s[0])
            elif self.need(n, "mr", s[0], f) and s[1] + s[2] > self.mr_by_id[s[0]]["len"]:
                self.err(n, f, "bytes %d..%d lie outside MR %d (%d bytes)"
                         % (s[1], s[1] + s[2], s[0], self.mr_by_id[s[0]]["len"]))

    def check_av(self, n, av, field):
        self.fields(n, av, AV_KEYS, AV_GLOBAL if av.get("is_global") else {})
        if av.get("is_global"):
            for k, ty in AV_GLOBAL.items():
                if k not in av:
                    self.err(n, field + "." + k, "missing (is_global is 1)")
            if len(av.get("dgid", "")) != 32:
                self.err(n, field + ".dgid", "not 16 bytes")

    # --- calls -------------------------------------------------------------------------------
    def do_other(self, n, rec):
        call = rec["call"]
        for kind, creator in KINDS.items():
            if creator == call:
                self.create(n, rec, kind)
        if call in DESTROY:
            kind = DESTROY[call]
            if self.need(n, kind, rec[kind]):
                self.live[kind].discard(rec[kind])
        for k in ("dev", "pd", "ch", "cq", "srq"):
            if k in rec and KINDS.get(k) != call and call not in DESTROY:
                self.need(n, k, rec[k])
        if call == "create_ah":
            self.check_av(n, rec["av"], "av")

    def do_reg_mr(self, n, rec):
        self.need(n, "pd", rec["pd"])
        self.create(n, rec, "mr")
        lo = rec.get("iova", rec["addr"])
        m = {"mr": rec["mr"], "rkey": rec["rkey"], "lo": lo, "hi": lo + rec["len"],
             "len": rec["len"], "reg": self.ret_real(rec), "dereg": None,
             "remote": rec["access"] & 0xE != 0}
        self.mr_by_id[rec["mr"]] = m
        self.mrs.append(m)

    def do_dereg_mr(self, n, rec):
        if self.need(n, "mr", rec["mr"]):
            self.live["mr"].discard(rec["mr"])
            self.mr_by_id[rec["mr"]]["dereg"] = self.t0_real + rec["t"]

    def do_create_cq(self, n, rec):
        self.need(n, "dev", rec["dev"])
        if "ch" in rec:
            self.need(n, "ch", rec["ch"])
        self.create(n, rec, "cq")
        if rec["cqe_out"] < rec["cqe"]:
            self.err(n, "cqe_out", "fewer entries given than asked")
        self.outstanding[rec["cq"]] = []

    def do_create_qp(self, n, rec):
        self.need(n, "pd", rec["pd"])
        self.need(n, "cq", rec["scq"], "scq")
        self.need(n, "cq", rec["rcq"], "rcq")
        if rec["type"] not in ("RC", "UC", "UD"):
            self.err(n, "type", "%r is not RC, UC or UD" % rec["type"])
        if rec["qp"] > 0xFFFFFF:
            self.err(n, "qp", "a QP number has 24 bits")
        q = self.qps.get(rec["qp"])
        if q and q["live"]:
            self.err(n, "qp", "QP %d is already live" % rec["qp"])
        self.qps[rec["qp"]] = {"scq": rec["scq"], "rcq": rec["rcq"], "dest_qp": None,
                               "state": "RESET", "live": True, "type": rec["type"],
                               "created": self.ret_real(rec), "sig_all": rec["sig_all"]}

    def qp(self, n, qpn):
        q = self.qps.get(qpn)
        if not q or not q["live"]:
            self.err(n, "qp", "QP %r is not live" % (qpn,))
            return None
        return q

    def do_destroy_qp(self, n, rec):
        q = self.qp(n, rec["qp"])
        if q:
            q["live"] = False

    def do_modify_qp(self, n, rec):
        for k, (bit, ty) in QP_ATTRS.items():
            if (k in rec) != bool(rec["mask"] & bit):
                self.err(n, k, "given without its mask bit" if k in rec
                         else "its mask bit 0x%x is set but it is missing" % bit)
        if "state" in rec and rec["state"] not in STATES:
            self.err(n, "state", "%r is not a QP state" % rec["state"])
        if "mtu" in rec and rec["mtu"] not in (256, 512, 1024, 2048, 4096):
            self.err(n, "mtu", "%r is not 256..4096" % rec["mtu"])
        if "av" in rec:
            self.check_av(n, rec["av"], "av")
        q = self.qp(n, rec["qp"])
        if not q or "state" not in rec:
            return
        order = {"INIT": ("RESET", "INIT"), "RTR": ("INIT",), "RTS": ("RTR", "RTS", "SQD")}
        new = rec["state"]
        if new in order and q["state"] not in order[new]:
            self.err(n, "state", "%s from %s" % (new, q["state"]))
        if new == "RTR" and q["type"] != "UD":
            for k in ("av", "mtu", "dest_qp", "rq_psn", "max_dest_rd_atomic", "min_rnr_timer"):
                if k not in rec:
                    self.err(n, k, "missing for RTR of an %s QP" % q["type"])
            q["dest_qp"] = rec.get("dest_qp")
            q["rtr_t"] = self.ret_real(rec)
        if new == "RTS" and q["type"] != "UD":
            for k in ("sq_psn", "timeout", "retry_cnt", "rnr_retry", "max_rd_atomic"):
                if k not in rec:
                    self.err(n, k, "missing for RTS of an %s QP" % q["type"])
        q["state"] = new

    def do_post_send(self, n, rec):
        q = self.qp(n, rec["qp"])
        if q and q["state"] != "RTS":
            self.err(n, "qp", "post_send on QP %d in %s" % (rec["qp"], q["state"]))
        for i, wr in enumerate(rec["wr"]):
            f = "wr[%d]" % i
            if not isinstance(wr, dict):
                self.err(n, f, "not an object")
                continue
            self.fields(n, wr, {"id": U, "op": S, "flags": U, "sge": A},
                        {k: v for k, v in SEND_WR_KEYS.items()
                         if k not in ("id", "op", "flags", "sge")})
            op = wr.get("op")
            if op not in SEND_OPS:
                self.err(n, f + ".op", "%r is not a send op" % (op,))
                continue
            if op in ("WRITE", "WRITE_IMM", "READ", "CMP_SWP", "FETCH_ADD") and \
                    ("rkey" not in wr or "raddr" not in wr):
                self.err(n, f + ".rkey", "%s needs rkey and raddr" % op)
            if op.endswith("_IMM") and "imm" not in wr:
                self.err(n, f + ".imm", "%s needs imm" % op)
            if isinstance(wr.get("sge"), list):
                self.check_sges(n, wr["sge"], f + ".sge")
            if not q or rec["ret"] != 0:
                continue
            self.posts.append((self.ret_real(rec), n, rec["qp"], wr))
            if wr.get("flags", 0) & 2 or q["sig_all"]:
                self.outstanding[q["scq"]].append((rec["qp"], wr.get("id"), WC_OF[op], False))

    def do_post_recv(self, n, rec):
        q = self.qp(n, rec["qp"])
        if q and q["state"] == "RESET":
            self.err(n, "qp", "post_recv on QP %d in RESET" % rec["qp"])
        for i, wr in enumerate(rec["wr"]):
            f = "wr[%d]" % i
            if not isinstance(wr, dict):
                self.err(n, f, "not an object")
                continue
            self.fields(n, wr, {"id": U, "sge": A}, {})
            if isinstance(wr.get("sge"), list):
                self.check_sges(n, wr["sge"], f + ".sge")
            if q and rec["ret"] == 0:
                self.recvs.append((self.ret_real(rec), rec["qp"]))
                self.outstanding[q["rcq"]].append((rec["qp"], wr.get("id"), "RECV", True))

    def do_poll_cq(self, n, rec):
        if not self.need(n, "cq", rec["cq"]):
            return
        if rec["ret"] != len(rec["wc"]):
            self.err(n, "ret", "%d, but %d completions in wc" % (rec["ret"], len(rec["wc"])))
        if rec["ret"] > rec["n"]:
            self.err(n, "n", "more completions than asked")
        pending = self.outstanding[rec["cq"]]
        for i, c in enumerate(rec["wc"]):
            f = "wc[%d]" % i
            if not isinstance(c, dict):
                self.err(n, f, "not an object")
                continue
            self.fields(n, c, {k: WC_KEYS[k] for k in WC_REQUIRED},
                        {k: v for k, v in WC_KEYS.items() if k not in WC_REQUIRED})
            if c.get("op") not in WC_OPS:
                self.err(n, f + ".op", "%r is not a completion op" % (c.get("op"),))
            if c.get("status") != "SUCCESS":
                continue
            is_recv = c.get("op") in ("RECV", "RECV_RDMA_WITH_IMM")
            match = [j for j, p in enumerate(pending)
                     if p[0] == c.get("qp") and p[1] == c.get("id") and p[3] == is_recv]
            if not match:
                self.err(n, f, "completion %r on QP %r matches no outstanding WR of CQ %d"
                         % (c.get("id"), c.get("qp"), rec["cq"]))
                continue
            p = pending.pop(match[0])
            if not is_recv and p[2] != c.get("op"):
                self.err(n, f + ".op", "%s for a WR completing as %s" % (c.get("op"), p[2]))
            if is_recv:
                self.recv_completions.setdefault(c.get("qp"), []).append(c)


def check_pair(a, b):
    """What replay needs between host0's trace a and host1's trace b."""
    errors = []
    for x, y in ((a, b), (b, a)):
        for qpn, q in x.qps.items():
            if q["type"] == "UD" or q["dest_qp"] is None:
                continue
            peer = y.qps.get(q["dest_qp"])
            if peer is None:
                errors.append("%s: QP %d: dest_qp %d is no QP of %s"
                              % (x.path, qpn, q["dest_qp"], y.path))
            elif peer["dest_qp"] != qpn:
                errors.append("%s: QP %d: its peer %d in %s names QP %r, not it back"
                              % (x.path, qpn, q["dest_qp"], y.path, peer["dest_qp"]))
        msgs = {}   # peer qp -> [post time] of SEND*/WRITE_IMM
        for t, n, qpn, wr in x.posts:
            op = wr.get("op")
            if "rkey" in wr and "raddr" in wr:
                length = sum(s[2] for s in wr.get("sge", []) if isinstance(s, list)
                             and len(s) >= 3)
                if op in ("CMP_SWP", "FETCH_ADD"):
                    length = 8
                lo, hi = wr["raddr"], wr["raddr"] + length
                ok = [m for m in y.mrs if m["rkey"] == wr["rkey"] and m["lo"] <= lo
                      and hi <= m["hi"] and m["reg"] <= t
                      and (m["dereg"] is None or m["dereg"] >= t)]
                if not ok:
                    errors.append("%s:%d: wr id %r: rkey 0x%x [0x%x, 0x%x) lies in no MR of %s "
                                  "live when it was posted" % (x.path, n, wr.get("id"),
                                                               wr["rkey"], lo, hi, y.path))
            if "rqpn" in wr and wr["rqpn"] not in y.qps:
                errors.append("%s:%d: rqpn %d is no QP of %s" % (x.path, n, wr["rqpn"], y.path))
            if op in ("SEND", "SEND_IMM", "SEND_INV", "WRITE_IMM"):
                dest = x.qps[qpn]["dest_qp"]
                msgs.setdefault(dest, []).append((t, n))
        for dest, times in msgs.items():
            posted = sorted(t for t, qpn in y.recvs if qpn == dest)
            for k, (t, n) in enumerate(sorted(times)):
                if k >= len(posted):
                    errors.append("%s:%d: message %d to QP %r: %s posted only %d receives on it"
                                  % (x.path, n, k + 1, dest, y.path, len(posted)))
                    break
                if posted[k] > t:
                    errors.append("%s:%d: message %d to QP %r posted before %s's receive for "
                                  "it (%d ns later)" % (x.path, n, k + 1, dest, y.path,
                                                        posted[k] - t))
                    break
            if len(y.recv_completions.get(dest, [])) != len(times):
                errors.append("%s: QP %r polled %d receive completions for %d messages from %s"
                              % (y.path, dest, len(y.recv_completions.get(dest, [])),
                                 len(times), x.path))
    return errors


def check_files(paths):
    traces = [Trace(p) for p in paths]
    errors = [e for t in traces for e in t.errors]
    return traces, errors


# --- test cases -------------------------------------------------------------------------------
PY = "/usr/bin/python3"


def run(argv, expect_rc=0):
    p = subprocess.run(argv, capture_output=True, text=True)
    if expect_rc is not None and p.returncode != expect_rc:
        raise Failure("%s exited %d (expected %d): %s%s" % (" ".join(argv), p.returncode,
                                                            expect_rc, p.stdout, p.stderr))
    return p


class Failure(Exception):
    pass


def expect_clean(paths, pair=True):
    traces, errors = check_files(paths)
    if pair and not errors:
        errors = check_pair(traces[0], traces[1])
    if errors:
        raise Failure("\n".join(errors[:40]) + ("\n... %d in all" % len(errors)
                                               if len(errors) > 40 else ""))
    return traces


def gen(root, out, *args):
    s, c = os.path.join(out, "s.jsonl"), os.path.join(out, "c.jsonl")
    run([PY, os.path.join(root, "tools", "gen_kv_trace.py"), "--server-out", s,
         "--client-out", c] + list(args))
    return s, c


def case_kv_deterministic(root, tmp, rnicsim):
    args = ["--qps", "16", "--requests", "800", "--seed", "7"]
    d1, d2, d3 = (os.path.join(tmp, x) for x in ("a", "b", "c"))
    for d in (d1, d2, d3):
        os.mkdir(d)
    one, two = gen(root, d1, *args), gen(root, d2, *args)
    for p, q in zip(one, two):
        if open(p, "rb").read() != open(q, "rb").read():
            raise Failure("same arguments, different bytes: %s %s" % (p, q))
    other = gen(root, d3, *(args[:-1] + ["8"]))
    if open(other[1], "rb").read() == open(one[1], "rb").read():
        raise Failure("--seed 8 gave the same client trace as --seed 7")


KV_VARIANTS = {
    "default": [],
    "many_qps": ["--qps", "256", "--window", "2", "--requests", "3000"],
    "uniform_puts_inline": ["--qps", "8", "--requests", "1500", "--key-dist", "uniform",
                            "--get-ratio", "0.3", "--max-inline", "128", "--window", "16"],
    "range_sizes_small": ["--qps", "1", "--window", "1", "--requests", "50", "--value-size",
                          "8-4000", "--keys", "10"],
}


def case_kv_format(root, tmp, rnicsim, variant):
    s, c = gen(root, tmp, *KV_VARIANTS[variant])
    traces = expect_clean([s, c])
    args = KV_VARIANTS[variant]
    want = int(args[args.index("--requests") + 1]) if "--requests" in args else 10000
    ops = [wr for _, _, _, wr in traces[1].posts if wr["op"] in ("READ", "WRITE")]
    if len(ops) != want:
        raise Failure("%d READs and WRITEs posted, --requests %d" % (len(ops), want))


def case_kv_errors(root, tmp, rnicsim):
    g = os.path.join(root, "tools", "gen_kv_trace.py")
    for args, words in ((["--qps", "0"], ["--qps"]), (["--get-ratio", "2"], ["--get-ratio"]),
                        (["--value-size", "64:x"], ["--value-size", "64:x"]),
                        (["--keys", "4000000000"], ["--keys", "1 TiB"]),
                        (["--window", "5000"], ["--window"]),
                        (["--server-out", os.path.join(tmp, "no", "s.jsonl")],
                         ["cannot write", "s.jsonl"])):
        p = run([PY, g, "--client-out", os.path.join(tmp, "c.jsonl")] + args, expect_rc=2)
        for w in words:
            if w not in p.stderr:
                raise Failure("%s: message %r does not name %r" % (args, p.stderr, w))
    run([PY, g, "--help"])


# The commands that made the samples in traces/ (traces/README.md gives the same).
KV_SAMPLE = ["--qps", "64", "--requests", "2000", "--seed", "1"]


def case_samples(root, tmp, rnicsim):
    """The samples in traces/ are valid, and are what their documented commands make."""
    tr = os.path.join(root, "traces")
    expect_clean([os.path.join(tr, "kv_server.jsonl"), os.path.join(tr, "kv_client.jsonl")])
    expect_clean([os.path.join(tr, "nccl_allreduce_rank1.jsonl"),
                  os.path.join(tr, "nccl_allreduce_peers.jsonl")])
    fresh = {}
    os.mkdir(os.path.join(tmp, "kv"))
    s, c = gen(root, os.path.join(tmp, "kv"), *KV_SAMPLE)
    fresh["kv_server.jsonl"], fresh["kv_client.jsonl"] = s, c
    example = os.path.join(tmp, "nccl_allreduce.profiler.json")
    with open(example, "w") as f:
        f.write(run([PY, os.path.join(tr, "make_nccl_example.py")]).stdout)
    fresh["nccl_allreduce.profiler.json"] = example
    run([PY, os.path.join(root, "tools", "trace_import_nccl.py"), example, "--out-dir",
         os.path.join(tmp, "nccl")])
    for name in ("nccl_allreduce_rank1.jsonl", "nccl_allreduce_peers.jsonl"):
        fresh[name] = os.path.join(tmp, "nccl", name)
    for name, path in sorted(fresh.items()):
        if open(path, "rb").read() != open(os.path.join(tr, name), "rb").read():
            raise Failure("traces/%s is not what its command in traces/README.md makes" % name)


def case_rnicsim_check(root, tmp, rnicsim):
    """rnicsim's own reader (rnicsim trace check) accepts the samples and the scripts' output,
    and converts each to the binary form and back to the same bytes."""
    if not rnicsim or not os.path.exists(rnicsim):
        raise Failure("no rnicsim binary given (%r)" % (rnicsim,))
    files = [os.path.join(root, "traces", x) for x in sorted(os.listdir(
        os.path.join(root, "traces"))) if x.endswith(".jsonl")]
    for variant, args in sorted(KV_VARIANTS.items()):
        d = os.path.join(tmp, "kv_" + variant)
        os.mkdir(d)
        files += gen(root, d, *args)
    d = os.path.join(tmp, "nccl2")
    files += import_nccl(root, os.path.join(root, "traces", "nccl_allreduce.profiler.json"), d,
                         "--qps-per-conn", "2")
    env = dict(os.environ, SC_COPYRIGHT_MESSAGE="DISABLE")
    p = subprocess.run([rnicsim, "trace", "check"] + files, capture_output=True, text=True,
                       env=env)
    if p.returncode != 0:
        raise Failure("rnicsim trace check: exit %d\n%s%s" % (p.returncode, p.stdout[-3000:],
                                                               p.stderr[-3000:]))
    for i, f in enumerate(files):
        binary, back = os.path.join(tmp, "%d.rntrace" % i), os.path.join(tmp, "%d.jsonl" % i)
        for a, b in ((f, binary), (binary, back)):
            q = subprocess.run([rnicsim, "trace", "convert", a, b], capture_output=True,
                               text=True, env=env)
            if q.returncode != 0:
                raise Failure("rnicsim trace convert %s %s: %s" % (a, b, q.stderr))
        if open(back, "rb").read() != open(f, "rb").read():
            raise Failure("%s: JSON Lines -> binary -> JSON Lines changed the bytes" % f)


def nccl_input_totals(path):
    """Independently of the importer: per direction, the proxy ops' steps and bytes. A proxy op
    is a PROXY-category 'b' event whose args carry transSize (Send/Recv in NCCL 2.23-2.25's
    example plugin, ProgressSend/ProgressRecv later)."""
    tot = {"send": [0, 0], "recv": [0, 0]}
    with open(path) as f:
        for line in f:
            if '"cat": "PROXY"' not in line or '"transSize"' not in line:
                continue
            name = re.search(r'"name": "(\w+)"', line).group(1)
            if name in ("ScheduleSend", "ScheduleRecv"):
                continue
            steps = int(re.search(r'"Steps": (\d+)', line).group(1))
            size = int(re.search(r'"transSize": (\d+)', line).group(1))
            d = "send" if name.endswith("Send") else "recv"
            tot[d][0] += steps
            tot[d][1] += size
    return tot


def import_nccl(root, inp, out, *args):
    run([PY, os.path.join(root, "tools", "trace_import_nccl.py"), inp, "--out-dir", out]
        + list(args))
    names = sorted(os.listdir(out))
    local = [os.path.join(out, x) for x in names if not x.endswith("_peers.jsonl")]
    peers = [os.path.join(out, x) for x in names if x.endswith("_peers.jsonl")]
    if len(local) != 1 or len(peers) != 1:
        raise Failure("expected one rank trace and one _peers trace in %s: %s" % (out, names))
    return local[0], peers[0]


def data_writes(trace):
    """(count, bytes) of the RDMA writes that carry data: WRITE_WITH_IMM (NCCL's data write;
    the CTS/FIFO entries are plain inline WRITEs)."""
    n = b = 0
    for _, _, _, wr in trace.posts:
        if wr["op"] == "WRITE_IMM":
            n += 1
            b += sum(s[2] for s in wr["sge"])
    return n, b


def case_nccl_counts(root, tmp, rnicsim, qps="1"):
    inp = os.path.join(root, "traces", "nccl_allreduce.profiler.json")
    local, peers = import_nccl(root, inp, tmp, "--qps-per-conn", qps)
    a, b = expect_clean([local, peers])
    tot = nccl_input_totals(inp)
    q = int(qps)
    for trace, d in ((a, "send"), (b, "recv")):
        n, nbytes = data_writes(trace)
        # each step's bytes are split over the connection's QPs (empty parts not posted)
        if nbytes != tot[d][1] or not tot[d][0] <= n <= tot[d][0] * q:
            raise Failure("%s: %d data writes of %d bytes; the input's %s proxy ops have %d "
                          "steps of %d bytes (%d QPs a connection)"
                          % (trace.path, n, nbytes, d, tot[d][0], tot[d][1], q))
    if q == 1 and (data_writes(a)[0] != tot["send"][0] or data_writes(b)[0] != tot["recv"][0]):
        raise Failure("with one QP a connection, one data write a step")


def case_nccl_counts_2qps(root, tmp, rnicsim):
    case_nccl_counts(root, tmp, rnicsim, qps="2")


NEW_FORMAT = """[
{"name": "AllReduce", "cat": "COLL", "ph": "b", "id": 0, "pid": 777, "tid": 1, "ts": 10.5, "args": {"SeqNum": 0, "CommHash": 42, "Rank": 3, "Count": 4096, "Datatype": "ncclFloat32", "Algorithm": "RING", "Protocol": "SIMPLE", "nChannels": 1}},
{"name": "ScheduleSend", "cat": "PROXY", "ph": "b", "id": 0, "pid": 777, "tid": 1, "ts": 20.000000, "args": {"Channel": 0, "Peer": 0, "Steps": 2, "ChunkSize": 8192, "transSize": 16384}},
{"name": "ScheduleSend", "cat": "PROXY", "ph": "e", "id": 0, "pid": 777, "tid": 1, "ts": 21.000000},
{"name": "ProgressSend", "cat": "PROXY", "ph": "b", "id": 0, "pid": 777, "tid": 1, "ts": 21.000000, "args": {"Channel": 0, "Peer": 0, "Steps": 2, "ChunkSize": 8192, "transSize": 16384}},
{"name": "SendGpuWait", "cat": "NET", "ph": "b", "id": 0, "pid": 777, "tid": 1, "ts": 21.5, "args": {"Step": 0}},
{"name": "SendGpuWait", "cat": "NET", "ph": "e", "id": 0, "pid": 777, "tid": 1, "ts": 22.0},
{"name": "SendPeerWait", "cat": "NET", "ph": "b", "id": 0, "pid": 777, "tid": 1, "ts": 22.0, "args": {"Step": 0}},
{"name": "SendPeerWait", "cat": "NET", "ph": "e", "id": 0, "pid": 777, "tid": 1, "ts": 25.0},
{"name": "SendWait", "cat": "NET", "ph": "b", "id": 0, "pid": 777, "tid": 1, "ts": 25.0, "args": {"Step": 0}},
{"name": "SendWait", "cat": "NET", "ph": "e", "id": 0, "pid": 777, "tid": 1, "ts": 28.0},
{"name": "ProgressSend", "cat": "PROXY", "ph": "e", "id": 0, "pid": 777, "tid": 1, "ts": 40.000000},
{"name": "ScheduleRecv", "cat": "PROXY", "ph": "b", "id": 1, "pid": 777, "tid": 1, "ts": 20.5, "args": {"Channel": 0, "Peer": 2, "Steps": 3, "ChunkSize": 8192, "transSize": 20000}},
{"name": "ScheduleRecv", "cat": "PROXY", "ph": "e", "id": 1, "pid": 777, "tid": 1, "ts": 21.5},
{"name": "ProgressRecv", "cat": "PROXY", "ph": "b", "id": 1, "pid": 777, "tid": 1, "ts": 21.5, "args": {"Channel": 0, "Peer": 2, "Steps": 3, "ChunkSize": 8192, "transSize": 20000}},
{"name": "RecvWait", "cat": "NET", "ph": "b", "id": 1, "pid": 777, "tid": 1, "ts": 22.0, "args": {"Step": 0}},
{"name": "RecvWait", "cat": "NET", "ph": "e", "id": 1, "pid": 777, "tid": 1, "ts": 30.0},
{"name": "RecvFlushWait", "cat": "NET", "ph": "b", "id": 1, "pid": 777, "tid": 1, "ts": 30.0, "args": {"Step": 0}},
{"name": "RecvFlushWait", "cat": "NET", "ph": "e", "id": 1, "pid": 777, "tid": 1, "ts": 30.5},
{"name": "RecvGpuWait", "cat": "NET", "ph": "b", "id": 1, "pid": 777, "tid": 1, "ts": 30.5, "args": {"Step": 0}},
{"name": "RecvGpuWait", "cat": "NET", "ph": "e", "id": 1, "pid": 777, "tid": 1, "ts": 31.0},
{"name": "ProgressRecv", "cat": "PROXY", "ph": "e", "id": 1, "pid": 777, "tid": 1, "ts": 45.000000},
{"name": "AllReduce", "cat": "COLL", "ph": "e", "id": 0, "pid": 777, "tid": 1, "ts": 46.0},
{}]
"""


def case_nccl_new_format(root, tmp, rnicsim):
    """NCCL 2.26+'s example plugin (Schedule*/Progress* ops; SendPeerWait; no
    RecvBufferWait), with steps missing from the dump (interpolated)."""
    inp = os.path.join(tmp, "new.json")
    with open(inp, "w") as f:
        f.write(NEW_FORMAT)
    out = os.path.join(tmp, "out")
    os.mkdir(out)
    local, peers = import_nccl(root, inp, out)
    a, b = expect_clean([local, peers])
    if os.path.basename(local) != "new_rank3.jsonl":
        raise Failure("the rank comes from the COLL event: %s" % local)
    if data_writes(a) != (2, 16384) or data_writes(b) != (3, 20000):
        raise Failure("data writes %s and %s, expected (2, 16384) and (3, 20000)"
                      % (data_writes(a), data_writes(b)))


# A good proxy op to break, and the breakages: (the input's lines after "[", the line the message
# must name, words it must contain besides the file name and that line).
GOOD = ['{"name": "AllReduce", "cat": "COLL", "ph": "b", "id": 0, "pid": 9, "tid": 1, "ts": 1.0, '
        '"args": {"SeqNum": 0, "CommHash": 1, "Rank": 1, "Count": 4, "Datatype": "ncclFloat32", '
        '"Algorithm": "RING", "Protocol": "SIMPLE", "nMaxChannels": 1}},',
        '{"name": "Send", "cat": "PROXY", "ph": "b", "id": 1, "pid": 9, "tid": 1, "ts": 5.0, '
        '"args": {"Channel": 0, "Peer": 2, "Steps": 2, "ChunkSize": 4096, "transSize": 8192}},',
        '{"name": "Send", "cat": "PROXY", "ph": "e", "id": 1, "pid": 9, "tid": 1, "ts": 9.0},']


def broken_line(i, old, new):
    lines = list(GOOD)
    lines[i] = lines[i].replace(old, new)
    assert lines[i] != GOOD[i]
    return lines


BROKEN = {
    "not_json": (broken_line(1, '"args": {', '"args": {{'), 3, ["not a JSON"]),
    "steps_text": (broken_line(1, '"Steps": 2', '"Steps": "two"'), 3, ["args.Steps", "'two'"]),
    "no_transsize": (broken_line(1, ', "transSize": 8192', ''), 3, ["args.transSize", "missing"]),
    "negative_size": (broken_line(1, '"transSize": 8192', '"transSize": -5'), 3,
                      ["args.transSize", "-5"]),
    "no_ts": (broken_line(2, ', "ts": 9.0', ''), 4, ["ts", "missing"]),
    "peer_missing": (broken_line(1, '"Peer": 2, ', ''), 3, ["args.Peer", "missing"]),
    "bad_rank": (broken_line(0, '"Rank": 1', '"Rank": "one"'), 2, ["args.Rank"]),
    "no_rank": (GOOD[1:], 2, ["Rank", "--rank"]),
    "unterminated_op": (GOOD[:2], 3, ["ph", "never ends"]),
    "mismatched_end": (broken_line(2, '"name": "Send"', '"name": "Recv"'), 4,
                       ["name", "Send of line 3"]),
}


def case_nccl_errors(root, tmp, rnicsim):
    imp = os.path.join(root, "tools", "trace_import_nccl.py")
    for name, (lines, at, words) in sorted(BROKEN.items()):
        inp = os.path.join(tmp, name + ".json")
        with open(inp, "w") as f:
            f.write("[\n" + "\n".join(lines) + "\n{}]\n")
        p = run([PY, imp, inp, "--out-dir", os.path.join(tmp, name)], expect_rc=2)
        msg = p.stderr
        if "%s:%d:" % (inp, at) not in msg or any(w not in msg for w in words):
            raise Failure("%s: the message %r does not name %s:%d and %s"
                          % (name, msg.strip(), inp, at, words))
        if os.path.exists(os.path.join(tmp, name)):
            raise Failure("%s: output written despite the error" % name)
    p = run([PY, imp, os.path.join(tmp, "absent.json"), "--out-dir", tmp], expect_rc=2)
    if "absent.json" not in p.stderr:
        raise Failure("a missing input: %r" % p.stderr)
    empty = os.path.join(tmp, "empty.json")
    with open(empty, "w") as f:
        f.write("[\n{}]\n")
    p = run([PY, imp, empty, "--out-dir", tmp], expect_rc=2)
    if "empty.json" not in p.stderr or "proxy" not in p.stderr.lower():
        raise Failure("an input without proxy ops: %r" % p.stderr)
    # the good input itself imports
    good = os.path.join(tmp, "good.json")
    with open(good, "w") as f:
        f.write("[\n" + "\n".join(GOOD) + "\n{}]\n")
    run([PY, imp, good, "--out-dir", os.path.join(tmp, "good")])


def case_checker_catches(root, tmp, rnicsim):
    """The checker itself: broken copies of a good pair must fail."""
    s, c = gen(root, tmp, "--qps", "2", "--requests", "20")
    lines = open(c).read().split("\n")

    def broken(edit, what):
        p = os.path.join(tmp, "broken.jsonl")
        with open(p, "w") as f:
            f.write("\n".join(edit(list(lines))))
        traces, errors = check_files([s, p])
        if not errors:
            errors = check_pair(traces[0], traces[1])
        if not errors:
            raise Failure("the checker missed: " + what)

    def sub(pattern, repl, count=1):
        return lambda ls: [re.sub(pattern, repl, ls[i], count=count) if i == first(ls, pattern)
                           else l for i, l in enumerate(ls)]

    def first(ls, pattern):
        return next(i for i, l in enumerate(ls) if re.search(pattern, l))
    broken(sub(r'"rkey":\d+,"raddr"', '"rkey":99,"raddr"'), "an rkey of no MR")
    broken(sub(r'"dest_qp":\d+', '"dest_qp":5'), "a dest_qp of no QP")
    broken(sub(r',"tid":', ',"x":1,"tid":'), "an unknown field")
    broken(sub(r'"records":\d+', '"records":3'), "a wrong end count")
    broken(sub(r'"state":"RTR"', '"state":"RTS"'), "RTS from INIT")
    broken(lambda ls: [l for l in ls if '"call":"poll_cq"' not in l or '"SEND"' not in l],
           "a completion never polled")


def case_replay(root, tmp, rnicsim):
    """rnicsim replay runs the samples and the scripts' output to the end: exit 0, result OK,
    every recorded send and receive WR posted on its host."""
    if not rnicsim or not os.path.exists(rnicsim):
        raise Failure("no rnicsim binary given (%r)" % (rnicsim,))
    tr = os.path.join(root, "traces")
    pairs = [(os.path.join(tr, "kv_server.jsonl"), os.path.join(tr, "kv_client.jsonl")),
             (os.path.join(tr, "nccl_allreduce_rank1.jsonl"),
              os.path.join(tr, "nccl_allreduce_peers.jsonl"))]
    for variant in ("many_qps", "uniform_puts_inline", "range_sizes_small"):
        d = os.path.join(tmp, variant)
        os.mkdir(d)
        pairs.append(gen(root, d, *KV_VARIANTS[variant]))
    pairs.append(import_nccl(root, os.path.join(tr, "nccl_allreduce.profiler.json"),
                             os.path.join(tmp, "nccl2"), "--qps-per-conn", "2"))
    env = dict(os.environ, SC_COPYRIGHT_MESSAGE="DISABLE")
    for i, pair in enumerate(pairs):
        traces = expect_clean(list(pair))
        p = subprocess.run([rnicsim, "replay", pair[0], pair[1], "--out",
                            os.path.join(tmp, "out%d" % i), "--no-plots"],
                           capture_output=True, text=True, env=env)
        if p.returncode != 0 or "result: OK" not in p.stdout:
            raise Failure("rnicsim replay %s %s: exit %d\n%s%s" % (
                pair[0], pair[1], p.returncode, p.stdout[-3000:], p.stderr[-3000:]))
        posted = re.findall(r"posted (\d+) send WRs \(\d+ bytes\), (\d+) receive WRs",
                            p.stdout)
        want = [(str(len(t.posts)), str(len(t.recvs))) for t in traces]
        if posted != want:
            raise Failure("rnicsim replay %s %s: posted (send, receive) WRs %s, the traces "
                          "have %s" % (pair[0], pair[1], posted, want))


CASES = {
    "gen.deterministic": case_kv_deterministic,
    "gen.errors": case_kv_errors,
    "import_nccl.counts": case_nccl_counts,
    "import_nccl.counts_2qps": case_nccl_counts_2qps,
    "import_nccl.new_format": case_nccl_new_format,
    "import_nccl.errors": case_nccl_errors,
    "samples": case_samples,
    "rnicsim_check": case_rnicsim_check,
    "replay": case_replay,
    "checker_catches": case_checker_catches,
}
for _v in KV_VARIANTS:
    CASES["gen.format." + _v] = (lambda v: lambda r, t, b: case_kv_format(r, t, b, v))(_v)


def main(argv):
    if len(argv) >= 2 and argv[0] == "format":
        errors = check_files(argv[1:])[1]
    elif len(argv) == 3 and argv[0] == "pair":
        traces, errors = check_files(argv[1:])
        if not errors:
            errors = check_pair(*traces)
    elif len(argv) == 2 and argv[1] == "--list":
        print("\n".join(sorted(CASES)))
        return 0
    elif len(argv) in (2, 3) and argv[1] in CASES:
        tmp = tempfile.mkdtemp(prefix="rnicsim-traces-")
        try:
            CASES[argv[1]](argv[0], tmp, argv[2] if len(argv) == 3 else None)
        except Failure as e:
            print("FAIL %s: %s" % (argv[1], e))
            return 1
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        print("ok %s" % argv[1])
        return 0
    else:
        sys.stderr.write(__doc__)
        return 2
    for e in errors:
        print(e)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""Writing rnicsim verb traces (docs/traces.md, format version 1, JSON Lines form) from Python:
shared by the generators and importers in tools/ (gen_kv_trace.py, trace_import_nccl.py).

A Trace holds the records of one simulated process. Each call method appends one record in the
order the calls returned: a call asked to start before the previous one returned starts when it
returned (one thread, as the recorded programs), so `t` never runs backwards. Object ids count
from 1 per kind as the format says; QPs are named by the QP numbers the caller gives. Records are
written with a fixed key order and no spaces: the same calls give the same bytes.

Standard library only (Debian's /usr/bin/python3)."""
import json

# ibv_qp_attr_mask bits (rdma-core verbs.h).
QP_STATE = 1 << 0
QP_ACCESS_FLAGS = 1 << 3
QP_PKEY_INDEX = 1 << 4
QP_PORT = 1 << 5
QP_AV = 1 << 7
QP_PATH_MTU = 1 << 8
QP_TIMEOUT = 1 << 9
QP_RETRY_CNT = 1 << 10
QP_RNR_RETRY = 1 << 11
QP_RQ_PSN = 1 << 12
QP_MAX_QP_RD_ATOMIC = 1 << 13
QP_MIN_RNR_TIMER = 1 << 15
QP_SQ_PSN = 1 << 16
QP_MAX_DEST_RD_ATOMIC = 1 << 17
QP_DEST_QPN = 1 << 20

# ibv_access_flags, ibv_send_flags.
ACCESS_LOCAL_WRITE = 1
ACCESS_REMOTE_WRITE = 2
ACCESS_REMOTE_READ = 4
SEND_SIGNALED = 2
SEND_INLINE = 8


def ipv4_gid(a, b, c, d):
    """The IPv4-mapped GID ::ffff:a.b.c.d as the format's lowercase hexadecimal text."""
    return "00000000000000000000ffff" + "".join("%02x" % x for x in (a, b, c, d))


def roce_av(dgid_hex, sgid_index=0, sl=0, tclass=0, hop_limit=64):
    """A RoCEv2 address vector (GRH always present, as RoCE requires)."""
    return {"dlid": 0, "sl": sl, "port": 1, "is_global": 1, "dgid": dgid_hex,
            "sgid_index": sgid_index, "hop_limit": hop_limit, "tclass": tclass, "flow_label": 0}


class Trace:
    """The records of one process. Times are integer nanoseconds from the trace's start."""

    def __init__(self, argv, host, pid, t0_mono, t0_real, source, origin=0):
        self.records = [{"call": "trace", "version": 1, "pid": pid, "argv": list(argv),
                         "host": host, "t0_mono": t0_mono, "t0_real": t0_real,
                         "payload": "none", "source": source}]
        self.tid = pid
        self.origin = origin  # the caller's times minus `origin` are the trace's `t`
        self.now = origin  # when the last call returned, on the caller's clock
        self.ids = {}
        self.empty_pending = {}  # cq -> empty polls not yet reported

    # --- plumbing -------------------------------------------------------------------------
    def _new_id(self, kind):
        self.ids[kind] = self.ids.get(kind, 0) + 1
        return self.ids[kind]

    def call(self, call, t, d, ret=0, **fields):
        """Appends one record; returns the time the call returned (caller's clock). `t` earlier
        than the previous return is moved to it. Keys whose value is None are left out."""
        t = max(int(t), self.now)
        d = max(int(d), 1)
        rec = {"call": call, "t": t - self.origin, "d": d, "tid": self.tid, "ret": ret}
        for k, v in fields.items():
            if v is not None:
                rec[k] = v
        self.records.append(rec)
        self.now = t + d
        return self.now

    # --- objects --------------------------------------------------------------------------
    def open_device(self, t, name, d=90000):
        dev = self._new_id("dev")
        self.call("open_device", t, d, dev=dev, name=name)
        return dev

    def alloc_pd(self, t, dev, d=3000):
        pd = self._new_id("pd")
        self.call("alloc_pd", t, d, dev=dev, pd=pd)
        return pd

    def reg_mr(self, t, pd, addr, length, access, lkey, rkey, d=None):
        mr = self._new_id("mr")
        if d is None:  # pinning costs about 0.25 us per 4 KiB page
            d = 15000 + 250 * ((length + 4095) // 4096)
        self.call("reg_mr", t, d, pd=pd, mr=mr, addr=addr, len=length, access=access,
                  lkey=lkey, rkey=rkey)
        return mr

    def create_cq(self, t, dev, cqe, cqe_out=None, d=12000):
        cq = self._new_id("cq")
        if cqe_out is None:  # providers round up to a power of two
            cqe_out = 1
            while cqe_out < cqe + 1:
                cqe_out *= 2
            cqe_out -= 1
        self.call("create_cq", t, d, dev=dev, cq=cq, cqe=cqe, cqe_out=cqe_out, vec=0)
        self.empty_pending[cq] = 0
        return cq

    def create_qp(self, t, pd, qpn, scq, rcq, max_send_wr, max_recv_wr, max_send_sge=1,
                  max_recv_sge=1, max_inline=0, qp_type="RC", d=20000):
        self.call("create_qp", t, d, pd=pd, qp=qpn, type=qp_type, scq=scq, rcq=rcq,
                  max_send_wr=max_send_wr, max_recv_wr=max_recv_wr, max_send_sge=max_send_sge,
                  max_recv_sge=max_recv_sge, max_inline=max_inline, sig_all=0)
        return qpn

    def qp_to_init(self, t, qpn, access, port=1, d=6000):
        return self.call("modify_qp", t, d, qp=qpn,
                         mask=QP_STATE | QP_PKEY_INDEX | QP_PORT | QP_ACCESS_FLAGS,
                         state="INIT", access=access, pkey_index=0, port=port)

    def qp_to_rtr(self, t, qpn, av, mtu, dest_qp, rq_psn, max_dest_rd_atomic=16,
                  min_rnr_timer=12, d=9000):
        return self.call("modify_qp", t, d, qp=qpn,
                         mask=(QP_STATE | QP_AV | QP_PATH_MTU | QP_DEST_QPN | QP_RQ_PSN
                               | QP_MAX_DEST_RD_ATOMIC | QP_MIN_RNR_TIMER),
                         state="RTR", av=av, mtu=mtu, rq_psn=rq_psn,
                         max_dest_rd_atomic=max_dest_rd_atomic, min_rnr_timer=min_rnr_timer,
                         dest_qp=dest_qp)

    def qp_to_rts(self, t, qpn, sq_psn, timeout=14, retry_cnt=7, rnr_retry=7, max_rd_atomic=16,
                  d=7000):
        return self.call("modify_qp", t, d, qp=qpn,
                         mask=(QP_STATE | QP_TIMEOUT | QP_RETRY_CNT | QP_RNR_RETRY | QP_SQ_PSN
                               | QP_MAX_QP_RD_ATOMIC),
                         state="RTS", timeout=timeout, retry_cnt=retry_cnt, rnr_retry=rnr_retry,
                         sq_psn=sq_psn, max_rd_atomic=max_rd_atomic)

    def destroy(self, t, call, key, ident, d=8000):
        return self.call(call, t, d, **{key: ident})

    # --- data path ------------------------------------------------------------------------
    def post_send(self, t, qpn, wrs, d=None):
        if d is None:
            d = 120 + 60 * len(wrs)
        return self.call("post_send", t, d, qp=qpn, wr=wrs)

    def post_recv(self, t, qpn, wrs, d=None):
        if d is None:
            d = 80 + 40 * len(wrs)
        return self.call("post_recv", t, d, qp=qpn, wr=wrs)

    def note_empty_polls(self, cq, n):
        """Polls of `cq` that found nothing: reported by its next recorded poll (or by end)."""
        self.empty_pending[cq] += n

    def poll_cq(self, t, cq, n, wcs, d=None):
        if d is None:
            d = 60 + 25 * len(wcs)
        empty = self.empty_pending[cq]
        self.empty_pending[cq] = 0
        return self.call("poll_cq", t, d, ret=len(wcs), cq=cq, n=n, wc=wcs,
                         empty=empty if empty else None)

    def end(self, t):
        t = max(int(t), self.now)
        self.records.append({"call": "end", "t": t - self.origin, "records": len(self.records) - 1,
                             "empty": sum(self.empty_pending.values())})
        self.now = t

    def lines(self):
        return [json.dumps(r, separators=(",", ":")) + "\n" for r in self.records]

    def write(self, path):
        with open(path, "w", encoding="utf-8", newline="\n") as f:
            f.writelines(self.lines())


def send_wr(wr_id, op, flags, sge, rkey=None, raddr=None, imm=None):
    wr = {"id": wr_id, "op": op, "flags": flags, "sge": sge}
    if imm is not None:
        wr["imm"] = imm
    if rkey is not None:
        wr["rkey"] = rkey
        wr["raddr"] = raddr
    return wr


def wc(wr_id, op, length, qpn, imm=None):
    c = {"id": wr_id, "status": "SUCCESS", "op": op, "len": length, "qp": qpn}
    if imm is not None:
        c["imm"] = imm
        c["flags"] = 2  # IBV_WC_WITH_IMM
    else:
        c["flags"] = 0
    return c

#!/usr/bin/python3
"""Imports the dump of NCCL's example profiler plugin (ext-profiler/example in NVIDIA/nccl, NCCL
2.23 and later) into a pair of rnicsim verb traces (docs/traces.md): the verbs NCCL's IB
transport (src/transport/net_ib) issues for the network traffic the dump records, timed from the
dump's timestamps, for `rnicsim replay`.

  tools/trace_import_nccl.py INPUT --out-dir DIR [--name PREFIX] [--rank R]
                             [--qps-per-conn N] [--buff-size BYTES] [--mtu N]

INPUT is one file the plugin wrote (NCCL_PROFILE_DUMP_FILE: one per process and thread), the
Chrome trace events of one process: one JSON object a line inside `[` ... `{}]`. The ranks of that
process become host0, DIR/PREFIX_rank<R>.jsonl; every peer it exchanged data with over the
network is played by host1, DIR/PREFIX_peers.jsonl:

  build/bin/rnicsim replay DIR/PREFIX_rank<R>.jsonl DIR/PREFIX_peers.jsonl

What is read. Proxy operations (cat PROXY; `Send`/`Recv` up to NCCL 2.25, `ProgressSend`/
`ProgressRecv` later) with Channel, Peer, Steps and transSize, from their `b` event to their `e`;
the proxy-step events (cat NET) inside them when NCCL_PROFILE_EVENT_MASK enabled them
(ncclProfileProxyStep): SendWait begins when a step's data is posted and ends when its send
completed, RecvWait begins when a step's receive is posted and ends when its data arrived. A step
without these events is placed evenly inside its operation's span. The rank is the Rank of the
enclosing COLL or P2P event (or --rank). Everything else (groups, kernels, proxy control, the
NET_IB per-QP events) is skipped.

What is written, per (rank, peer, channel, direction) connection: a CQ, NCCL's registered buffers
(the sender's CTS FIFO, 32 slots x 8 x 64 bytes; the receiver's FIFO elements, the same; a staging
buffer of 8 step slots on each side) and --qps-per-conn RC QPs on each side
(NCCL_IB_QPS_PER_CONNECTION), connected as NCCL does (INIT with REMOTE_WRITE; RTR with mtu,
dest_qp, rq_psn 0, max_dest_rd_atomic 1, min_rnr_timer 12, a RoCEv2 address with hop_limit 255; RTS
with sq_psn 0, timeout 20, retry_cnt 7, rnr_retry 7, max_rd_atomic 1). Per step, as ncclIbIrecv,
ncclIbPostFifo, ncclIbMultiSend and ncclIbTest do: the receiver posts a receive (no SGE, wr_id the
FIFO slot) on every QP of the connection and RDMA-WRITEs a 64-byte CTS entry into the sender's FIFO
slot (signalled only in slot 0); the sender then posts on every QP one signalled
RDMA_WRITE_WITH_IMM (immediate: the step's size) of its share of the step (the size divided by the
QPs, rounded up to 128 bytes); each side polls its CQ (4 entries at a time) for the completions.

Limits (what is guessed): buffer addresses, keys and QP numbers are made up; the dump has no
per-step sizes (transSize is spread evenly over Steps); the peer side is inferred (its CTS 2 us
before the local send, its data write just before the local receive completed); one NIC, no
adaptive routing (NCCL's separate zero-byte WRITE_WITH_IMM), no multi-receive (nreqs 1), no GPU
flush READ, no PXN; connections are set up before the first operation and torn down after the
last; t0_real and the peers' pid are arbitrary. Errors name the file, the line and the field.
Standard library only."""
import argparse
import json
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import rntrace  # noqa: E402
from rntrace import send_wr, wc  # noqa: E402

T0_REAL = 1796000000000000000
FIFO_SLOTS = 32          # NET_IB_MAX_REQUESTS
FIFO_ELEM = 64           # sizeof(struct ncclIbSendFifo)
MAX_RECVS = 8            # NCCL_NET_IB_MAX_RECVS
NCCL_STEPS = 8
WRITE_ALIGN = 128        # IB_WRITE_CHUNK_ALIGNMENT
POLL_N = 4               # ncclIbTest polls 4 entries at a time
POLL_LOOP_NS = 200       # one turn of the proxy thread's progress loop
LOCAL_GID = rntrace.ipv4_gid(10, 0, 0, 1)
PEER_GID = rntrace.ipv4_gid(10, 0, 0, 2)
ACCESS_MR = (rntrace.ACCESS_LOCAL_WRITE | rntrace.ACCESS_REMOTE_WRITE
             | rntrace.ACCESS_REMOTE_READ)
OP_NAMES = {"Send": "send", "Recv": "recv", "ProgressSend": "send", "ProgressRecv": "recv"}
STEP_WAIT = {"send": "SendWait", "recv": "RecvWait"}


class InputError(Exception):
    pass


def fail(msg):
    sys.stderr.write("trace_import_nccl.py: " + msg + "\n")
    sys.exit(2)


# --- reading the dump ----------------------------------------------------------------------
BARE = re.compile(r'(:\s*)(0x[0-9a-fA-F]+|nccl\w+|\(nil\))(?=\s*[,}])')


def parse_events(path):
    """Yields (line number, event) for every event line. Tolerates the plugin's unquoted values
    (older versions print `"datatype": ncclFloat32`, `"Stream": 0x1234`)."""
    try:
        f = open(path, encoding="utf-8")
    except OSError as e:
        raise InputError("%s: cannot read: %s" % (path, e.strerror))
    with f:
        for n, raw in enumerate(f, 1):
            line = raw.strip()
            if line in ("", "[", "]", "{}", "{}]", "{},", "[]"):
                continue
            if line.endswith(","):
                line = line[:-1]
            try:
                ev = json.loads(line)
            except ValueError:
                try:
                    ev = json.loads(BARE.sub(r'\1"\2"', line))
                except ValueError as e:
                    raise InputError("%s:%d: -: not a JSON event (one object a line): %s"
                                     % (path, n, e))
            if not isinstance(ev, dict):
                raise InputError("%s:%d: -: not a JSON event object" % (path, n))
            yield n, ev


def field(path, n, obj, key, kind, where=""):
    if key not in obj:
        raise InputError("%s:%d: %s%s: missing" % (path, n, where, key))
    v = obj[key]
    if kind == "uint":
        ok = isinstance(v, int) and not isinstance(v, bool) and v >= 0
        what = "a non-negative integer"
    elif kind == "ts":
        ok = isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 0
        what = "a non-negative time in microseconds"
    else:
        ok = isinstance(v, str)
        what = "a string"
    if not ok:
        raise InputError("%s:%d: %s%s: expected %s, got %r" % (path, n, where, key, what, v))
    return v


def read_ops(path, rank_opt):
    """The proxy operations of the dump: dicts with dir, rank, peer, channel, steps, size,
    start, end (ns) and per step index the (post, done) times the NET events give."""
    ops = []
    op = None
    rank = rank_opt
    net_open = {}
    for n, ev in parse_events(path):
        cat = ev.get("cat")
        ph = ev.get("ph")
        name = ev.get("name")
        if cat in ("COLL", "P2P") and ph == "b" and rank_opt is None:
            args = ev.get("args")
            if isinstance(args, dict) and "Rank" in args:
                rank = field(path, n, args, "Rank", "uint", "args.")
        if cat == "PROXY" and name in OP_NAMES:
            ts = field(path, n, ev, "ts", "ts")
            if ph == "b":
                if op is not None:
                    raise InputError("%s:%d: ph: a proxy op begins while %s of line %d is open"
                                     % (path, n, op["name"], op["line"]))
                args = ev.get("args")
                if not isinstance(args, dict):
                    raise InputError("%s:%d: args: missing (a proxy op's Channel, Peer, Steps, "
                                     "transSize)" % (path, n))
                op = {"name": name, "line": n, "dir": OP_NAMES[name], "rank": rank,
                      "peer": field(path, n, args, "Peer", "uint", "args."),
                      "channel": field(path, n, args, "Channel", "uint", "args."),
                      "steps": field(path, n, args, "Steps", "uint", "args."),
                      "size": field(path, n, args, "transSize", "uint", "args."),
                      "start": round(ts * 1000), "net": {}}
                if rank is None:
                    raise InputError("%s:%d: Rank: no COLL or P2P event with a Rank before this "
                                     "proxy op: give --rank" % (path, n))
                net_open = {}
            elif ph == "e":
                if op is None or op["name"] != name:
                    raise InputError("%s:%d: name: the end of a %s proxy op, but %s" % (
                        path, n, name, "none is open" if op is None else
                        "%s of line %d is open" % (op["name"], op["line"])))
                op["end"] = max(round(ts * 1000), op["start"])
                ops.append(op)
                op = None
            else:
                raise InputError("%s:%d: ph: %r, expected b or e" % (path, n, ph))
        elif cat == "NET" and op is not None and name == STEP_WAIT[op["dir"]]:
            ts = field(path, n, ev, "ts", "ts")
            key = (name, ev.get("id"))
            if ph == "b":
                args = ev.get("args")
                if not isinstance(args, dict):
                    raise InputError("%s:%d: args: missing (a proxy step's Step)" % (path, n))
                net_open[key] = (field(path, n, args, "Step", "uint", "args."), round(ts * 1000))
            elif ph == "e" and key in net_open:
                step, t_b = net_open.pop(key)
                op["net"][step] = (t_b, round(ts * 1000))
    if op is not None:
        raise InputError("%s:%d: ph: the proxy op %s begun here never ends (no 'e' event)"
                         % (path, op["line"], op["name"]))
    if not any(o["steps"] for o in ops):
        raise InputError("%s: no proxy ops with steps: was the dump made with "
                         "NCCL_PROFILE_EVENT_MASK including ncclProfileProxyOp (8), and did "
                         "the ranks talk over the network?" % path)
    return [o for o in ops if o["steps"]]


def step_times(op):
    """(bytes, post ns, done ns) of every step of an operation."""
    steps, size = op["steps"], op["size"]
    span = max(op["end"] - op["start"], steps * 1000)
    first = min(op["net"]) if op["net"] else 0
    out = []
    for i in range(steps):
        nbytes = size // steps + (1 if i < size % steps else 0)
        got = op["net"].get(first + i)
        if got and op["start"] <= got[0] <= got[1]:
            post, done = got
        else:
            post = op["start"] + span * i // steps + span // (5 * steps)
            done = op["start"] + span * (i + 1) // steps
        out.append((nbytes, post, max(done, post + 1)))
    return out


# --- writing the traces ----------------------------------------------------------------------
class Side:
    """One host's trace plus its address, key and QP number allocators."""

    def __init__(self, trace, addr, key, qpn, gid_of_peer, dev_name):
        self.t = trace
        self.addr = addr
        self.key = key
        self.qpn = qpn
        self.gid_of_peer = gid_of_peer
        self.dev_name = dev_name
        self.objects = []  # (call, key, id) to destroy, in creation order

    def mr(self, t, pd, length):
        addr = self.addr
        self.addr += (length + 0x1FFFFF) // 0x200000 * 0x200000  # 2 MiB apart
        self.key += 0x101
        mr = self.t.reg_mr(t, pd, addr, length, ACCESS_MR, self.key, self.key)
        self.objects.append(("dereg_mr", "mr", mr))
        return {"mr": mr, "addr": addr, "rkey": self.key, "len": length}

    def new_qpn(self):
        self.qpn += 1
        return self.qpn


class Conn:
    def __init__(self, key, nqps, slot_bytes):
        self.rank, self.peer, self.channel, self.dir = key
        self.nqps = nqps
        self.slot_bytes = slot_bytes
        self.head = 0  # FIFO requests so far (ncclIbNetCommBase.fifoHead)


def build(ops, a, argv_common, pid):
    local_trace = rntrace.Trace(argv_common + ["--side", "ranks"], "nccl-rank%s" % "-".join(
        str(r) for r in sorted({o["rank"] for o in ops})), pid, 51_000_000_000, T0_REAL,
        "import:nccl")
    peer_trace = rntrace.Trace(argv_common + ["--side", "peers"], "nccl-peers", 1000 + pid % 1000,
                               62_000_000_000, T0_REAL, "import:nccl")
    local = Side(local_trace, 0x7F2200000000, 0x1000, 0x10000, PEER_GID, "rnsim_host0")
    peers = Side(peer_trace, 0x7E1100000000, 0x8000, 0x20000, LOCAL_GID, "rnsim_host1")

    conns = {}
    for o in ops:
        key = (o["rank"], o["peer"], o["channel"], o["dir"])
        step_max = max(b for b, _, _ in step_times(o))
        if key not in conns:
            conns[key] = Conn(key, a.qps_per_conn, a.buff_size // NCCL_STEPS)
        conns[key].slot_bytes = max(conns[key].slot_bytes, step_max)

    # --- set-up: device, PD, then each connection (NCCL connects before the first transfer)
    t = 100_000
    pds = {}
    for s in (local, peers):
        s.t.open_device(t, s.dev_name)
        pds[s] = s.t.alloc_pd(s.t.now + 2000, 1)
    for c in conns.values():
        sender, receiver = (local, peers) if c.dir == "send" else (peers, local)
        for s in (sender, receiver):
            c_cq = s.t.create_cq(s.t.now + 1000, 1, 2 * FIFO_SLOTS * c.nqps)
            s.objects.append(("destroy_cq", "cq", c_cq))
            if s is sender:
                c.s_cq = c_cq
                c.fifo = s.mr(s.t.now + 500, pds[s], FIFO_SLOTS * MAX_RECVS * FIFO_ELEM)
                c.sbuf = s.mr(s.t.now + 500, pds[s], NCCL_STEPS * c.slot_bytes)
            else:
                c.r_cq = c_cq
                c.elems = s.mr(s.t.now + 500, pds[s], FIFO_SLOTS * MAX_RECVS * FIFO_ELEM)
                c.rbuf = s.mr(s.t.now + 500, pds[s], NCCL_STEPS * c.slot_bytes)
            qps = []
            for _ in range(c.nqps):
                q = s.t.create_qp(s.t.now + 300, pds[s], s.new_qpn(), c_cq, c_cq,
                                  2 * FIFO_SLOTS, FIFO_SLOTS)
                s.objects.append(("destroy_qp", "qp", q))
                s.t.qp_to_init(s.t.now + 200, q, rntrace.ACCESS_REMOTE_WRITE)
                qps.append(q)
            if s is sender:
                c.s_qps = qps
            else:
                c.r_qps = qps
        # the QP numbers, GIDs and the FIFO's address and rkey go over NCCL's socket
        met = max(sender.t.now, receiver.t.now) + 50_000
        for s, mine, theirs in ((receiver, c.r_qps, c.s_qps), (sender, c.s_qps, c.r_qps)):
            s.t.now = max(s.t.now, met)
            for q, p in zip(mine, theirs):
                s.t.qp_to_rtr(s.t.now + 200, q, rntrace.roce_av(s.gid_of_peer, hop_limit=255),
                              a.mtu, p, rq_psn=0, max_dest_rd_atomic=1, min_rnr_timer=12)
                s.t.qp_to_rts(s.t.now + 100, q, sq_psn=0, timeout=20, retry_cnt=7, rnr_retry=7,
                              max_rd_atomic=1)
    ready = max(local.t.now, peers.t.now) + 100_000
    first = min(o["start"] for o in ops)
    shift = ready - first

    # --- the steps, as actions on a common clock, then written in time order -----------------
    actions = []  # (t, tie, side, function)
    tie = [0]

    def at(t, side, fn):
        tie[0] += 1
        actions.append((t, tie[0], side, fn))

    for o in sorted(ops, key=lambda o: (o["start"], o["line"])):
        c = conns[(o["rank"], o["peer"], o["channel"], o["dir"])]
        sender, receiver = (local, peers) if c.dir == "send" else (peers, local)
        for nbytes, post, done in step_times(o):
            post += shift
            done += shift
            slot = c.head % FIFO_SLOTS
            buf = (c.head % NCCL_STEPS) * c.slot_bytes
            cts_q = c.r_qps[c.head % c.nqps]
            c.head += 1
            chunk = -(-(-(-nbytes // c.nqps)) // WRITE_ALIGN) * WRITE_ALIGN
            parts, off = [], 0
            for q in range(c.nqps):
                ln = min(nbytes - off, chunk)
                parts.append((off, ln))
                off += ln
            signalled_cts = slot == 0
            note = {"x_rank": c.rank, "x_peer": c.peer, "x_ch": c.channel}
            if c.dir == "send":  # the local rank sends: times are the sender's
                t_recv, t_send, t_rpoll, t_spoll = post - 2000, post, max(post + 500,
                                                                          done - 300), done
            else:                # the local rank receives: times are the receiver's
                t_recv = post
                t_send = max(post + 1500 + 400 * c.nqps, done - 1000 - nbytes * 8 // 100)
                t_rpoll = max(done, t_send + 1000)
                t_spoll = t_rpoll + 1000

            def recv_side(s=receiver, c=c, slot=slot, cts_q=cts_q, signalled=signalled_cts,
                          note=note, t0=t_recv):
                for q in c.r_qps:
                    s.t.call("post_recv", t0, 120, qp=q, wr=[{"id": slot, "sge": []}], **note)
                flags = rntrace.SEND_SIGNALED if signalled else 0
                s.t.call("post_send", t0, 180, qp=cts_q, wr=[send_wr(
                    slot if signalled else 0, "WRITE", flags,
                    [[c.elems["mr"], slot * MAX_RECVS * FIFO_ELEM, FIFO_ELEM]],
                    rkey=c.fifo["rkey"], raddr=c.fifo["addr"] + slot * MAX_RECVS * FIFO_ELEM)],
                    **note)

            def send_side(s=sender, c=c, slot=slot, buf=buf, parts=parts, nbytes=nbytes,
                          note=note, t0=t_send):
                for q, (off, ln) in zip(c.s_qps, parts):
                    sge = [[c.sbuf["mr"], buf + off, ln]] if ln else []
                    s.t.call("post_send", t0, 180, qp=q, wr=[send_wr(
                        slot, "WRITE_IMM", rntrace.SEND_SIGNALED, sge, rkey=c.rbuf["rkey"],
                        raddr=c.rbuf["addr"] + buf + off, imm=nbytes)], **note)

            def poll(s, cq, wcs, t0, since, note):
                s.t.note_empty_polls(cq, max(0, (t0 - since) // POLL_LOOP_NS))
                for i in range(0, len(wcs), POLL_N):
                    s.t.call("poll_cq", t0, 60 + 25 * len(wcs[i:i + POLL_N]),
                             ret=len(wcs[i:i + POLL_N]), cq=cq, n=POLL_N, wc=wcs[i:i + POLL_N],
                             empty=s.t.empty_pending[cq] or None, **note)
                    s.t.empty_pending[cq] = 0

            r_wcs = ([wc(slot, "RDMA_WRITE", 0, cts_q)] if signalled_cts else []) + [
                wc(slot, "RECV_RDMA_WITH_IMM", ln, q, imm=nbytes)
                for q, (off, ln) in zip(c.r_qps, parts)]
            s_wcs = [wc(slot, "RDMA_WRITE", 0, q) for q in c.s_qps]
            at(t_recv, receiver, recv_side)
            at(t_send, sender, send_side)
            at(t_rpoll, receiver, lambda s=receiver, cq=c.r_cq, w=r_wcs, t0=t_rpoll,
               since=t_recv, note=note: poll(s, cq, w, t0, since, note))
            at(t_spoll, sender, lambda s=sender, cq=c.s_cq, w=s_wcs, t0=t_spoll,
               since=t_send, note=note: poll(s, cq, w, t0, since, note))
    actions.sort(key=lambda x: (x[0], x[1]))
    for _, _, _, fn in actions:
        fn()

    # --- teardown: QPs, MRs, CQs (reverse creation order of kind), PD, device --------------
    end = max(local.t.now, peers.t.now) + 100_000
    for s in (local, peers):
        s.t.now = max(s.t.now, end)
        for kind in ("destroy_qp", "dereg_mr", "destroy_cq"):
            for call, key, ident in s.objects:
                if call == kind:
                    s.t.destroy(s.t.now + 300, call, key, ident,
                                d=12000 if call == "dereg_mr" else 8000)
        s.t.destroy(s.t.now + 300, "dealloc_pd", "pd", pds[s], d=3000)
        s.t.destroy(s.t.now + 300, "close_device", "dev", 1, d=40000)
        s.t.end(s.t.now + 1000)
    return local_trace, peer_trace


def main(argv):
    ap = argparse.ArgumentParser(
        prog="trace_import_nccl.py", description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n\n", 2)[2], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("input", metavar="INPUT", help="a dump file of NCCL's example profiler")
    ap.add_argument("--out-dir", required=True, help="where the two traces are written")
    ap.add_argument("--name", help="file name prefix (default: INPUT's name up to its first '.')")
    ap.add_argument("--rank", type=int, help="the dump's rank, when no COLL/P2P event gives it")
    ap.add_argument("--qps-per-conn", type=int, default=1,
                    help="QPs a connection, as NCCL_IB_QPS_PER_CONNECTION (1)")
    ap.add_argument("--buff-size", type=int, default=4 << 20,
                    help="NCCL_BUFFSIZE: 8 step slots a connection (4194304)")
    ap.add_argument("--mtu", type=int, default=4096, choices=[256, 512, 1024, 2048, 4096],
                    help="path MTU at RTR (4096)")
    a = ap.parse_args(argv)
    if not 1 <= a.qps_per_conn <= 128:
        fail("--qps-per-conn %d: 1 to 128" % a.qps_per_conn)
    if a.buff_size < NCCL_STEPS or (a.rank is not None and a.rank < 0):
        fail("--buff-size must be at least 8, --rank at least 0")
    try:
        ops = read_ops(a.input, a.rank)
    except InputError as e:
        fail(str(e))
    name = a.name or os.path.basename(a.input).split(".")[0]
    pid = None
    for _, ev in parse_events(a.input):
        if isinstance(ev.get("pid"), int) and ev["pid"] >= 0:
            pid = ev["pid"]
            break
    common = ["trace_import_nccl.py", os.path.basename(a.input), "--qps-per-conn",
              str(a.qps_per_conn), "--buff-size", str(a.buff_size), "--mtu", str(a.mtu)]
    local, peers = build(ops, a, common, pid if pid is not None else 1)
    ranks = "_".join(str(r) for r in sorted({o["rank"] for o in ops}))
    try:
        os.makedirs(a.out_dir, exist_ok=True)
        out = [os.path.join(a.out_dir, "%s_rank%s.jsonl" % (name, ranks)),
               os.path.join(a.out_dir, "%s_peers.jsonl" % name)]
        local.write(out[0])
        peers.write(out[1])
    except OSError as e:
        fail("cannot write into %s: %s" % (a.out_dir, e.strerror))
    sends = sum(o["size"] for o in ops if o["dir"] == "send")
    recvs = sum(o["size"] for o in ops if o["dir"] == "recv")
    print("%s: %d proxy ops (%d steps) on %d connections: %d bytes sent, %d received\n  %s\n  %s"
          % (a.input, len(ops), sum(o["steps"] for o in ops),
             len({(o["rank"], o["peer"], o["channel"], o["dir"]) for o in ops}), sends, recvs,
             out[0], out[1]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

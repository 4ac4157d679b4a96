#!/usr/bin/python3
"""Generates a pair of rnicsim verb traces (docs/traces.md) of a key-value store accessed with
one-sided RDMA, as FaRM and HERD-style stores do: a server process and a client process, one
JSON Lines trace each, for `rnicsim replay SERVER CLIENT` (server on host0, client on host1).

  tools/gen_kv_trace.py [--qps N] [--window W] [--requests N] [--get-ratio R]
                        [--keys N] [--key-dist uniform|zipf] [--zipf-theta T]
                        [--value-size DIST] [--max-inline N] [--seed S]
                        [--server-out PATH] [--client-out PATH]

The pattern. The server registers one large key-value region (`--keys` slots of the largest
value size, rounded up to 64 bytes), connects `--qps` RC QPs with the client and then does
nothing on the data path: every GET is an RDMA READ and every PUT an RDMA WRITE issued by the
client straight into the region (no server CPU). The client keeps `--window` requests
outstanding on every QP, each signalled and each with its own slot of a registered local buffer;
keys are drawn uniformly or from a Zipf distribution (hot keys scattered over the region), the
operation from `--get-ratio`, the size from `--value-size`. It busy-polls its one CQ as a real
client does: each poll_cq record takes every completion due by then (up to 16, the polls that
found nothing counted in `empty`), and a completed slot is reused at once for the next request
on that QP. Set-up is perftest's: RESET->INIT (access, port) ->RTR (mtu, dest_qp, rq_psn,
max_dest_rd_atomic, min_rnr_timer, RoCEv2 address) ->RTS (sq_psn, timeout, retry_cnt,
rnr_retry, max_rd_atomic), QP numbers and the region's rkey exchanged out of band before RTR.
At the end the client SENDs an 8-byte "done" message on its first QP, for which the server
posted a receive during set-up and which the server polls before it tears down: the server's
teardown so depends on the client's last completion, in the trace as in a real program.

Timing. Call durations are fixed typical costs (post_send about 0.2 us, reg_mr by pages, ...);
a request's completion is modelled as the round trip `--rtt-ns` plus its bytes on a
`--link-gbps` link shared by all QPs, plus a seeded exponential jitter, in order per QP.

What it is not: no server CPU work, no request/response messaging (HERD's SEND-based replies,
FaRM's message rings), no key lookup structure (a key is one fixed slot: no hash collisions,
no versioned values, no locks), no payload bytes (`payload: none`), and the timing is a model,
not a measurement: replay recomputes it on the simulated NIC.

Deterministic: the same arguments give the same bytes (the header's argv lists the parameters,
never the output paths). Standard library only."""
import argparse
import bisect
import math
import os
import random
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import rntrace  # noqa: E402
from rntrace import send_wr, wc  # noqa: E402

T0_REAL = 1796000000000000000  # 2026-11-29T...: a fixed wall-clock start (deterministic)
CLIENT_START = 2_000_000       # the client process starts 2 ms after the server
POLL_EMPTY_NS = 50             # one poll_cq that finds nothing
POLL_BATCH = 16
SERVER_QPN0 = 0x10000
CLIENT_QPN0 = 0x20000
KV_ADDR = 0x7F3C00000000
CTRL_ADDR = 0x55D0A0001000
CLIENT_BUF = 0x7F81C0000000
SERVER_GID = rntrace.ipv4_gid(10, 0, 0, 1)
CLIENT_GID = rntrace.ipv4_gid(10, 0, 0, 2)


def fail(msg):
    sys.stderr.write("gen_kv_trace.py: " + msg + "\n")
    sys.exit(2)


def parse_value_size(text):
    """'N', 'A-B' (uniform, multiples of 8) or 'S:W,S:W,...' (sizes with weights) -> sampler
    description (sizes, cumulative weights) or ('range', a, b)."""
    try:
        if ":" in text:
            sizes, weights = [], []
            for part in text.split(","):
                s, w = part.split(":")
                sizes.append(int(s))
                weights.append(float(w))
            if any(w <= 0 for w in weights):
                raise ValueError
            cum, total = [], 0.0
            for w in weights:
                total += w
                cum.append(total)
            return ("choice", sizes, [c / total for c in cum])
        if "-" in text:
            a, b = (int(x) for x in text.split("-"))
            if a > b:
                raise ValueError
            return ("range", a, b)
        n = int(text)
        return ("choice", [n], [1.0])
    except ValueError:
        fail("--value-size %r: expected N, A-B or S:W,S:W,... (sizes in bytes, weights > 0)"
             % text)


def value_sizes(dist):
    if dist[0] == "range":
        return [dist[1], dist[2]]
    return dist[1]


def sample_size(rng, dist):
    u = rng.random()
    if dist[0] == "range":
        a, b = dist[1], dist[2]
        steps = (b - a) // 8
        return a + 8 * min(int(u * (steps + 1)), steps)
    return dist[1][min(bisect.bisect_left(dist[2], u), len(dist[1]) - 1)]


class Keys:
    """Uniform or Zipf(theta) over ranks 0..n-1; rank r is key (r * stride) mod n with stride
    coprime to n, so that hot keys are spread over the region instead of packed at its start."""

    def __init__(self, n, dist, theta):
        self.n = n
        self.cdf = None
        if dist == "zipf":
            total, cdf = 0.0, []
            for r in range(1, n + 1):
                total += 1.0 / r ** theta
                cdf.append(total)
            self.cdf = [c / total for c in cdf]
        self.stride = 2654435761 % n or 1
        while math.gcd(self.stride, n) != 1:
            self.stride += 1

    def sample(self, rng):
        u = rng.random()
        if self.cdf is None:
            rank = min(int(u * self.n), self.n - 1)
        else:
            rank = min(bisect.bisect_left(self.cdf, u), self.n - 1)
        return (rank * self.stride) % self.n


def parse_args(argv):
    ap = argparse.ArgumentParser(
        prog="gen_kv_trace.py", description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n\n", 2)[2], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--qps", type=int, default=64, help="RC QPs between client and server (64)")
    ap.add_argument("--window", type=int, default=4,
                    help="requests outstanding per QP (4)")
    ap.add_argument("--requests", type=int, default=10000,
                    help="GETs and PUTs in all, over all QPs (10000)")
    ap.add_argument("--get-ratio", type=float, default=0.9,
                    help="share of GETs (RDMA READ); the rest are PUTs (RDMA WRITE) (0.9)")
    ap.add_argument("--keys", type=int, default=65536, help="key slots in the region (65536)")
    ap.add_argument("--key-dist", choices=["uniform", "zipf"], default="zipf",
                    help="key popularity (zipf)")
    ap.add_argument("--zipf-theta", type=float, default=0.99,
                    help="Zipf exponent, as YCSB's 0.99 (0.99)")
    ap.add_argument("--value-size", default="64:40,128:25,256:15,512:12,1024:8",
                    help="value sizes in bytes: N, A-B (uniform, steps of 8) or S:W,S:W,... "
                         "(weighted) (64:40,128:25,256:15,512:12,1024:8)")
    ap.add_argument("--max-inline", type=int, default=0,
                    help="PUTs of at most this many bytes are posted inline (0: none)")
    ap.add_argument("--mtu", type=int, default=4096, choices=[256, 512, 1024, 2048, 4096],
                    help="path MTU set at RTR (4096)")
    ap.add_argument("--rtt-ns", type=int, default=2000,
                    help="modelled round trip of a small request, ns (2000)")
    ap.add_argument("--link-gbps", type=float, default=100.0,
                    help="modelled link rate shared by all QPs (100)")
    ap.add_argument("--seed", type=int, default=1, help="random seed (1)")
    ap.add_argument("--server-out", default="kv_server.jsonl",
                    help="server trace, replay's first file (kv_server.jsonl)")
    ap.add_argument("--client-out", default="kv_client.jsonl",
                    help="client trace, replay's second file (kv_client.jsonl)")
    a = ap.parse_args(argv)
    for name in ("qps", "window", "requests", "keys"):
        if getattr(a, name) < 1:
            fail("--%s %d: must be at least 1" % (name, getattr(a, name)))
    if a.qps > 0xFFFF:
        fail("--qps %d: at most 65535" % a.qps)
    if not 0.0 <= a.get_ratio <= 1.0:
        fail("--get-ratio %g: must be between 0 and 1" % a.get_ratio)
    if a.zipf_theta <= 0:
        fail("--zipf-theta %g: must be above 0" % a.zipf_theta)
    if a.max_inline < 0 or a.rtt_ns < 1 or a.link_gbps <= 0:
        fail("--max-inline must be >= 0, --rtt-ns >= 1, --link-gbps > 0")
    if a.window > 1024:
        fail("--window %d: at most 1024 (a QP's send queue)" % a.window)
    a.dist = parse_value_size(a.value_size)
    if min(value_sizes(a.dist)) < 1 or max(value_sizes(a.dist)) > 1 << 20:
        fail("--value-size %r: sizes must be 1 B to 1 MiB" % a.value_size)
    slot = (max(value_sizes(a.dist)) + 63) // 64 * 64
    if a.keys * slot > 1 << 40:
        fail("--keys %d of %d-byte slots: a region of %d bytes; at most 1 TiB"
             % (a.keys, slot, a.keys * slot))
    return a


def canonical_argv(a, role):
    return ["gen_kv_trace.py", "--role", role, "--qps", str(a.qps), "--window", str(a.window),
            "--requests", str(a.requests), "--get-ratio", repr(a.get_ratio), "--keys",
            str(a.keys), "--key-dist", a.key_dist, "--zipf-theta", repr(a.zipf_theta),
            "--value-size", a.value_size, "--max-inline", str(a.max_inline), "--mtu",
            str(a.mtu), "--rtt-ns", str(a.rtt_ns), "--link-gbps", repr(a.link_gbps),
            "--seed", str(a.seed)]


def generate(a):
    rng = random.Random(a.seed)
    keys = Keys(a.keys, a.key_dist, a.zipf_theta)
    slot = (max(value_sizes(a.dist)) + 63) // 64 * 64
    ns_per_byte = 8.0 / a.link_gbps

    srv = rntrace.Trace(canonical_argv(a, "server"), "kv-server", 4101, 81_234_000_000, T0_REAL,
                        "generator:kv_store")
    cli = rntrace.Trace(canonical_argv(a, "client"), "kv-client", 4102, 93_517_000_000,
                        T0_REAL + CLIENT_START, "generator:kv_store", origin=CLIENT_START)
    sqp = [SERVER_QPN0 + i for i in range(a.qps)]
    cqp = [CLIENT_QPN0 + i for i in range(a.qps)]
    kv_rkey, kv_len = 0x2A0101, a.keys * slot
    access_remote = (rntrace.ACCESS_LOCAL_WRITE | rntrace.ACCESS_REMOTE_WRITE
                     | rntrace.ACCESS_REMOTE_READ)

    # --- server set-up ------------------------------------------------------------------
    t = srv.open_device(100_000, "rnsim_host0")
    s_pd = srv.alloc_pd(t + 2000, 1)
    s_kv = srv.reg_mr(srv.now + 1500, s_pd, KV_ADDR, kv_len, access_remote, kv_rkey, kv_rkey)
    s_ctrl = srv.reg_mr(srv.now + 800, s_pd, CTRL_ADDR, 64, rntrace.ACCESS_LOCAL_WRITE,
                        0x2A0202, 0x2A0202)
    s_cq = srv.create_cq(srv.now + 700, 1, 2 * a.qps)
    for q in sqp:
        srv.create_qp(srv.now + 400, s_pd, q, s_cq, s_cq, 16, 16)
    for q in sqp:
        srv.qp_to_init(srv.now + 200, q, access_remote)
    bye_recv_id = 1
    srv.post_recv(srv.now + 300, sqp[0], [{"id": bye_recv_id, "sge": [[s_ctrl, 0, 64]]}])

    # --- client set-up ------------------------------------------------------------------
    c_buf_len = a.qps * a.window * slot + 64
    t = cli.open_device(CLIENT_START + 100_000, "rnsim_host1")
    c_pd = cli.alloc_pd(t + 2000, 1)
    c_mr = cli.reg_mr(cli.now + 1500, c_pd, CLIENT_BUF, c_buf_len, rntrace.ACCESS_LOCAL_WRITE,
                      0x3B0101, 0x3B0101)
    c_cq = cli.create_cq(cli.now + 700, 1, a.qps * a.window + 1)
    for q in cqp:
        cli.create_qp(cli.now + 400, c_pd, q, c_cq, c_cq, max(16, a.window + 1), 1,
                      max_inline=a.max_inline)
    for q in cqp:
        cli.qp_to_init(cli.now + 200, q, rntrace.ACCESS_LOCAL_WRITE)

    # --- out-of-band exchange (QP numbers, PSNs, the region's address and rkey) then RTR/RTS
    exchanged = max(srv.now, cli.now) + 150_000
    for trace, mine, theirs, gid in ((srv, sqp, cqp, CLIENT_GID), (cli, cqp, sqp, SERVER_GID)):
        trace.now = max(trace.now, exchanged)
        av = rntrace.roce_av(gid)
        for i, q in enumerate(mine):
            trace.qp_to_rtr(trace.now + 150, q, av, a.mtu, theirs[i], rq_psn=theirs[i] & 0xFFFFFF)
            trace.qp_to_rts(trace.now + 100, q, sq_psn=q & 0xFFFFFF)
    # "ready": the server tells the client it is in RTS (a TCP message, 30 us)
    start = max(srv.now, cli.now) + 30_000
    server_idle_from = srv.now

    # --- client traffic -------------------------------------------------------------------
    free = [list(range(i * a.window, (i + 1) * a.window))[::-1] for i in range(a.qps)]
    outstanding = []  # (completion time, seq, qp index, wr_id, op, len, slot)
    qp_last = [0] * a.qps
    wire_free = 0
    issued = 0
    seq = 0
    now = start

    def post(qi, now):
        nonlocal issued, wire_free, seq
        key = keys.sample(rng)
        is_get = rng.random() < a.get_ratio
        size = sample_size(rng, a.dist)
        s = free[qi].pop()
        issued += 1
        wr_id = issued
        flags = rntrace.SEND_SIGNALED
        if not is_get and size <= a.max_inline:
            flags |= rntrace.SEND_INLINE
        wr = send_wr(wr_id, "READ" if is_get else "WRITE", flags, [[c_mr, s * slot, size]],
                     rkey=kv_rkey, raddr=KV_ADDR + key * slot)
        ret = cli.post_send(now, cqp[qi], [wr])
        wire_free = max(wire_free, ret) + size * ns_per_byte + 60
        jitter = -math.log(1.0 - rng.random()) * 150
        done = max(int(wire_free + a.rtt_ns + jitter), qp_last[qi] + 1)
        qp_last[qi] = done
        seq += 1
        outstanding.append((done, seq, qi, wr_id, "RDMA_READ" if is_get else "RDMA_WRITE",
                            size if is_get else 0, s))
        return ret

    for w in range(a.window):
        for qi in range(a.qps):
            if issued < a.requests:
                now = post(qi, now)
    outstanding.sort()
    while outstanding:
        due = outstanding[0][0]
        if due > now:
            cli.note_empty_polls(c_cq, (due - now) // POLL_EMPTY_NS)
            now = due
        got = [o for o in outstanding[:POLL_BATCH] if o[0] <= now]
        del outstanding[:len(got)]
        now = cli.poll_cq(now, c_cq, POLL_BATCH,
                          [wc(o[3], o[4], o[5], cqp[o[2]]) for o in got])
        for o in got:
            free[o[2]].append(o[6])
            if issued < a.requests:
                now = post(o[2], now)
        outstanding.sort()

    # --- the "done" message, then teardown --------------------------------------------------
    bye_id = a.requests + 1
    now = cli.post_send(now, cqp[0], [send_wr(bye_id, "SEND", rntrace.SEND_SIGNALED,
                                              [[c_mr, c_buf_len - 64, 8]])])
    arrive = now + a.rtt_ns // 2
    acked = now + a.rtt_ns
    cli.note_empty_polls(c_cq, (acked - now) // POLL_EMPTY_NS)
    now = cli.poll_cq(acked, c_cq, POLL_BATCH, [wc(bye_id, "SEND", 0, cqp[0])])
    for q in cqp:
        now = cli.destroy(now + 300, "destroy_qp", "qp", q)
    now = cli.destroy(now + 300, "dereg_mr", "mr", c_mr, d=12000)
    now = cli.destroy(now + 300, "destroy_cq", "cq", c_cq)
    now = cli.destroy(now + 300, "dealloc_pd", "pd", c_pd, d=3000)
    now = cli.destroy(now + 300, "close_device", "dev", 1, d=40000)
    cli.end(now + 1000)

    srv.note_empty_polls(s_cq, (arrive - server_idle_from) // POLL_EMPTY_NS)
    t = srv.poll_cq(arrive + POLL_EMPTY_NS, s_cq, 1, [wc(bye_recv_id, "RECV", 8, sqp[0])])
    for q in sqp:
        t = srv.destroy(t + 300, "destroy_qp", "qp", q)
    t = srv.destroy(t + 300, "dereg_mr", "mr", s_kv, d=40000)
    t = srv.destroy(t + 300, "dereg_mr", "mr", s_ctrl, d=12000)
    t = srv.destroy(t + 300, "destroy_cq", "cq", s_cq)
    t = srv.destroy(t + 300, "dealloc_pd", "pd", s_pd, d=3000)
    t = srv.destroy(t + 300, "close_device", "dev", 1, d=40000)
    srv.end(t + 1000)
    return srv, cli


def main(argv):
    a = parse_args(argv)
    srv, cli = generate(a)
    for trace, path in ((srv, a.server_out), (cli, a.client_out)):
        try:
            trace.write(path)
        except OSError as e:
            fail("cannot write %s: %s" % (path, e.strerror))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

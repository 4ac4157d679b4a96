"""A pair of hand-built verb traces (docs/traces.md) for the replay tests: a server that posts one
receive and polls it, and a client that WRITEs 8 KiB into the server's region and SENDs 4 KiB,
each signaled and polled, as a real program's calls would be recorded (the server's RTR after the
client's QP exists, its receive before the client's SEND). Options make the variants the tests
need."""
import json

IBV_QP = dict(STATE=1, ACCESS_FLAGS=8, PKEY_INDEX=16, PORT=32, AV=128, PATH_MTU=256, TIMEOUT=512,
              RETRY_CNT=1024, RNR_RETRY=2048, RQ_PSN=4096, MAX_QP_RD_ATOMIC=8192,
              MIN_RNR_TIMER=32768, SQ_PSN=65536, MAX_DEST_RD_ATOMIC=131072, DEST_QPN=0x100000)
INIT_MASK = IBV_QP["STATE"] | IBV_QP["ACCESS_FLAGS"] | IBV_QP["PKEY_INDEX"] | IBV_QP["PORT"]
RTR_MASK = (IBV_QP["STATE"] | IBV_QP["AV"] | IBV_QP["PATH_MTU"] | IBV_QP["RQ_PSN"] |
            IBV_QP["DEST_QPN"] | IBV_QP["MAX_DEST_RD_ATOMIC"] | IBV_QP["MIN_RNR_TIMER"])
RTS_MASK = (IBV_QP["STATE"] | IBV_QP["TIMEOUT"] | IBV_QP["RETRY_CNT"] | IBV_QP["RNR_RETRY"] |
            IBV_QP["SQ_PSN"] | IBV_QP["MAX_QP_RD_ATOMIC"])
AV = {"dlid": 0, "sl": 0, "port": 1, "is_global": 1,
      "dgid": "00000000000000000000ffff0a000002", "sgid_index": 0, "hop_limit": 64, "tclass": 0,
      "flow_label": 0}
SERVER_QP, CLIENT_QP = 17, 33
SERVER_ADDR, CLIENT_ADDR = 0x55550010, 0x66660000
SERVER_RKEY, CLIENT_RKEY = 0x101, 0x201


def pattern(seed, n):
    return bytes((seed * 131 + i * 7 + (i >> 8)) & 0xFF for i in range(n))


def call(verb, t, **kw):
    r = {"call": verb, "t": t, "d": 100, "tid": 1, "ret": 0}
    r.update(kw)
    return r


def connect(qp, peer, t_init, t_rtr, t_rts):
    return [call("modify_qp", t_init, qp=qp, mask=INIT_MASK, state="INIT", access=15,
                 pkey_index=0, port=1),
            call("modify_qp", t_rtr, qp=qp, mask=RTR_MASK, state="RTR", av=AV, mtu=4096,
                 dest_qp=peer, rq_psn=0, max_dest_rd_atomic=1, min_rnr_timer=12),
            call("modify_qp", t_rts, qp=qp, mask=RTS_MASK, state="RTS", timeout=14, retry_cnt=7,
                 rnr_retry=7, sq_psn=0, max_rd_atomic=1)]


def setup(qp, addr, rkey, t, qp_type="RC"):
    return [call("open_device", t, dev=1, name="mlx5_0"),
            call("alloc_pd", t + 1000, dev=1, pd=1),
            call("reg_mr", t + 2000, pd=1, mr=1, addr=addr, len=8192, access=15, lkey=rkey,
                 rkey=rkey),
            call("create_cq", t + 3000, dev=1, cq=1, cqe=16, cqe_out=16, vec=0),
            call("create_qp", t + 4000, pd=1, qp=qp, type=qp_type, scq=1, rcq=1, max_send_wr=16,
                 max_recv_wr=16, max_send_sge=1, max_recv_sge=1, max_inline=0, sig_all=0)]


def teardown(qp, t):
    return [call("destroy_qp", t, qp=qp), call("destroy_cq", t + 1000, cq=1),
            call("dereg_mr", t + 2000, mr=1), call("dealloc_pd", t + 3000, pd=1),
            call("close_device", t + 4000, dev=1)]


def pair(payload=False, write_rkey=SERVER_RKEY, write_status="SUCCESS", server_rtr_t=150000,
         qp_type="RC"):
    """The server's and the client's records (without header and end)."""
    write_data, send_data = pattern(1, 8192), pattern(2, 4096)
    s = setup(SERVER_QP, SERVER_ADDR, SERVER_RKEY, 1000, qp_type)
    s += connect(SERVER_QP, CLIENT_QP, 6000, server_rtr_t, server_rtr_t + 1000)[:1]
    s.append(call("post_recv", 7000, qp=SERVER_QP, wr=[{"id": 1, "sge": [[1, 0, 4096]]}]))
    s += connect(SERVER_QP, CLIENT_QP, 6000, server_rtr_t, server_rtr_t + 1000)[1:]
    s.append(call("poll_cq", 900000, ret=1, cq=1, n=1, empty=100,
                  wc=[{"id": 1, "status": "SUCCESS", "op": "RECV", "len": 4096, "qp": SERVER_QP,
                       "flags": 0}]))
    s += teardown(SERVER_QP, 950000)
    c = setup(CLIENT_QP, CLIENT_ADDR, CLIENT_RKEY, 100000, qp_type)
    c += connect(CLIENT_QP, SERVER_QP, 105000, 106000, 107000)
    write = {"id": 7, "op": "WRITE", "flags": 2, "sge": [[1, 0, 8192]], "rkey": write_rkey,
             "raddr": SERVER_ADDR}
    send = {"id": 8, "op": "SEND", "flags": 2, "sge": [[1, 0, 4096]]}
    if payload:
        write["data"] = write_data.hex()
        send["data"] = send_data.hex()
    c.append(call("post_send", 200000, qp=CLIENT_QP, wr=[write]))
    c.append(call("poll_cq", 210000, ret=1, cq=1, n=1,
                  wc=[{"id": 7, "status": write_status, "op": "RDMA_WRITE", "len": 8192,
                       "qp": CLIENT_QP, "flags": 0}]))
    if write_status == "SUCCESS":
        c.append(call("post_send", 300000, qp=CLIENT_QP, wr=[send]))
        c.append(call("poll_cq", 310000, ret=1, cq=1, n=1,
                      wc=[{"id": 8, "status": "SUCCESS", "op": "SEND", "len": 4096,
                           "qp": CLIENT_QP, "flags": 0}]))
    c += teardown(CLIENT_QP, 950000)
    if payload:  # the server's region at dereg_mr: the SEND over the WRITE's first 4 KiB
        final = send_data + write_data[4096:]
        for r in s:
            if r["call"] == "dereg_mr":
                r["data"] = final.hex()
    return s, c


def write(path, pid, records, payload="none", end=True):
    head = {"call": "trace", "version": 1, "pid": pid, "argv": ["test"], "host": "lab",
            "t0_mono": 1, "t0_real": 1796000000000000000, "payload": payload,
            "source": "testbench/system/replay/traces.py"}
    with open(path, "w") as f:
        for r in [head] + records:
            f.write(json.dumps(r, separators=(",", ":")) + "\n")
        if end:
            f.write(json.dumps({"call": "end", "t": records[-1]["t"] + 10,
                                "records": len(records)}) + "\n")

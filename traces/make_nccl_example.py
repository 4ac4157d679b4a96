#!/usr/bin/python3
"""Writes traces/nccl_allreduce.profiler.json: an input for tools/trace_import_nccl.py in the exact
line format of NCCL's example profiler plugin (the fprintf formats of
ext-profiler/example/print_event.c in NVIDIA/nccl, NCCL 2.23-2.25: Group, COLL, the PROXY Send
and Recv operations with their POSTED/REM_FIFO_WAIT/TRANSMITTED/DONE or RECEIVED summaries, the
NET proxy-step events, the proxy-control events, in the order the plugin dumps them).

The content is made up, not captured: no GPU cluster was at hand. It describes what rank 1 of an
8-rank ring AllReduce would do, twice (SeqNum 0 and 1), 262144 float32 (1 MiB) on 2 channels with
the SIMPLE protocol: on each channel a Recv from rank 0 and a Send to rank 2 of 14 steps of 64 KiB
(2 x 7/8 of the channel's half of the data). Timings are a plain model: a step's 64 KiB take
about 5.6 us on the wire (100 Gb/s), the reduction 3 us, with a seeded jitter. Deterministic.

  traces/make_nccl_example.py > traces/nccl_allreduce.profiler.json"""
import random
import sys

PID = 2417
rng = random.Random(5)
out = []
ids = {"group": 0, "coll": 0, "proxy": 0, "step": 0, "ctrl": 0}


def ev(name, cat, ph, i, ts, args=None):
    line = ('{"name": "%s", "cat": "%s", "ph": "%s", "id": %d, "pid": %d, "tid": %d, "ts": %f'
            % (name, cat, ph, i, PID, 1, ts))
    out.append(line + (", \"args\": {%s}}," % args if args is not None else "},"))


def allreduce(seq, t0):
    STEPS, CHUNK, SIZE = 14, 65536, 14 * 65536
    ev("Group", "GROUP", "b", ids["group"], t0, '"groupId": %d' % seq)
    ev("AllReduce", "COLL", "b", ids["coll"], t0 + 2.1,
       '"SeqNum": %d, "CommHash": 8731945120019283746, "Rank": 1, "Count": 262144, '
       '"Datatype": "ncclFloat32", "Algorithm": "RING", "Protocol": "SIMPLE", '
       '"nMaxChannels": 2' % seq)
    end = t0
    for ch in (0, 1):
        start = t0 + 40.0 + ch * 1.7
        arrive = []  # when each received step's data is in
        t = start + 6.0
        for k in range(STEPS):
            t += 5.6 + rng.random() * 0.8
            arrive.append(t)
        sent = []
        ready = start + 0.5
        for k in range(STEPS):
            # step 0 sends local data; later steps wait for the reduction of the step received
            gpu = start + 2.0 if k == 0 else max(arrive[k - 1] + 3.0, ready)
            done = gpu + 5.6 + rng.random() * 0.6
            sent.append((gpu, done))
            ready = done
        last_recv, last_send = arrive[-1] + 3.2, sent[-1][1]
        # the Recv op, its steps, its end
        pid = ids["proxy"]
        ev("Recv", "PROXY", "b", pid, start,
           '"Channel": %d, "Peer": 0, "Steps": %d, "ChunkSize": %d, "transSize": %d, '
           '"POSTED": {"step": %d, "ts": %f}, "RECEIVED": {"step": %d, "ts": %f}, '
           '"TRANSMITTED": {"step": %d, "ts": %f}, "DONE": {"step": %d, "ts": %f}'
           % (ch, STEPS, CHUNK, SIZE, STEPS, arrive[-9] - 5.0, STEPS, arrive[-1],
              STEPS, arrive[-1] + 0.6, STEPS, last_recv))
        for k in range(STEPS):
            sid = ids["step"]
            posted = start + 0.4 + k * 0.15 if k < 8 else arrive[k - 8] + 3.4
            ev("RecvBufferWait", "NET", "b", sid, posted - 0.3, '"Step": %d' % k)
            ev("RecvBufferWait", "NET", "e", sid, posted)
            ev("RecvWait", "NET", "b", sid, posted, '"Step": %d' % k)
            ev("RecvWait", "NET", "e", sid, arrive[k])
            ev("RecvFlushWait", "NET", "b", sid, arrive[k], '"Step": %d' % k)
            ev("RecvFlushWait", "NET", "e", sid, arrive[k] + 0.4)
            ev("RecvGpuWait", "NET", "b", sid, arrive[k] + 0.4, '"Step": %d' % k)
            ev("RecvGpuWait", "NET", "e", sid, arrive[k] + 3.2)
            ids["step"] += 1
        ev("Recv", "PROXY", "e", pid, last_recv + 0.3)
        ids["proxy"] += 1
        # the Send op
        pid = ids["proxy"]
        ev("Send", "PROXY", "b", pid, start + 0.4,
           '"Channel": %d, "Peer": 2, "Steps": %d, "ChunkSize": %d, "transSize": %d, '
           '"POSTED": {"step": %d, "ts": %f}, "REM_FIFO_WAIT": {"step": %d, "ts": %f}, '
           '"TRANSMITTED": {"step": %d, "ts": %f}, "DONE": {"step": %d, "ts": %f}'
           % (ch, STEPS, CHUNK, SIZE, STEPS, sent[-9][0], STEPS, sent[-1][0] - 0.2,
              STEPS, sent[-1][0], STEPS, last_send))
        for k in range(STEPS):
            sid = ids["step"]
            gpu, done = sent[k]
            buf = start + 0.5 + k * 0.12 if k < 8 else sent[k - 8][1]
            ev("SendBufferWait", "NET", "b", sid, buf - 0.1, '"Step": %d' % k)
            ev("SendBufferWait", "NET", "e", sid, buf)
            ev("SendGpuWait", "NET", "b", sid, buf, '"Step": %d' % k)
            ev("SendGpuWait", "NET", "e", sid, gpu)
            ev("SendWait", "NET", "b", sid, gpu, '"Step": %d' % k)
            ev("SendWait", "NET", "e", sid, done)
            ids["step"] += 1
        ev("Send", "PROXY", "e", pid, last_send + 0.3)
        ids["proxy"] += 1
        end = max(end, last_recv, last_send)
    ev("AllReduce", "COLL", "e", ids["coll"], end + 1.0)
    ev("Group", "GROUP", "e", ids["group"], end + 1.1)
    ids["coll"] += 1
    ids["group"] += 1
    return end


t = allreduce(0, 1204871.402344)
t = allreduce(1, t + 187.25)
for name, start, stop, args in (("Idle", 1204790.5, 1204911.0, None),
                                ("Append", 1204911.2, 1204912.9, '"appended": 4'),
                                ("Sleep", t + 5.0, t + 170.0, None)):
    i = ids["ctrl"]
    ev(name, "PROXY", "b", i, start, args)
    ev(name, "PROXY", "e", i, stop)
    ids["ctrl"] += 1
sys.stdout.write("[\n" + "\n".join(out) + "\n{}]\n")

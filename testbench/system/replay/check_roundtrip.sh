#!/bin/bash
# Capture, then replay: an unmodified Debian verbs program pair runs on the virtual device of
# `rnicsim serve`, each side recorded by `rnicsim capture --payload full`; `rnicsim replay` then
# runs both traces through the simulated NICs. The replay must make every recorded post (same
# WRs, same bytes), get every recorded completion with the same status (and opcode, and byte
# count where verbs define one), and leave every region with the bytes the program's region held
# when it deregistered it, in every range the NIC wrote with bytes the traces hold (a received
# SEND, the peer's WRITE; docs/traces.md, Replay: memory contents).
# Usage: check_roundtrip.sh RNICSIM MODE PORT   (MODE: rc_pingpong write_bw send_lat read_lat)
set -euo pipefail
rnicsim=$(realpath "$1") mode=$2 port=$3
dir=$(mktemp -d /tmp/rnicsim-roundtrip-XXXXXX)
serve_pid= spid=
# A failure leaves no process behind (a server still listening would hold the port).
trap '[ -n "$spid" ] && kill $spid 2>/dev/null; [ -n "$serve_pid" ] && kill $serve_pid 2>/dev/null; [ -n "${RNICSIM_KEEP:-}" ] && echo "kept $dir" || rm -rf "$dir"' EXIT
fail() {
  echo "FAIL ($mode): $1"
  for f in server client serve replay; do
    [ -f "$dir/$f.log" ] && { echo "--- $f.log"; tail -40 "$dir/$f.log"; }
  done
  exit 1
}
case $mode in
  rc_pingpong) prog=(ibv_rc_pingpong -g 0 -p "$port" -n 30 -s 4096 -c) ;;
  write_bw) prog=(ib_write_bw -p "$port" -n 200 -s 4096) ;;
  send_lat) prog=(ib_send_lat -p "$port" -n 100 -s 64) ;;
  read_lat) prog=(ib_read_lat -p "$port" -n 100 -s 256) ;;
  *) fail "unknown mode" ;;
esac

"$rnicsim" serve --dir "$dir/s" --out "$dir/serve_out" --exit-after 2 > "$dir/serve.log" 2>&1 &
serve_pid=$!
for _ in $(seq 100); do [ -f "$dir/s/hosts.json" ] && break; sleep 0.1; done
[ -f "$dir/s/hosts.json" ] || fail "serve did not start"
timeout 300 "$rnicsim" attach host1 --dir "$dir/s" -- \
  "$rnicsim" capture --out "$dir/server.rntrace" --payload full -- "${prog[@]}" \
  > "$dir/server.log" 2>&1 &
spid=$!
for _ in $(seq 200); do
  ss -ltn 2>/dev/null | grep -q ":$port " && break
  kill -0 $spid 2>/dev/null || break
  sleep 0.1
done
timeout 300 "$rnicsim" attach host0 --dir "$dir/s" -- \
  "$rnicsim" capture --out "$dir/client.rntrace" --payload full -- "${prog[@]}" localhost \
  > "$dir/client.log" 2>&1 || fail "client exited with $?"
wait $spid || fail "server exited with $?"
spid=
for _ in $(seq 300); do kill -0 "$serve_pid" 2>/dev/null || break; sleep 0.1; done
wait "$serve_pid" || fail "serve exited with $?"
serve_pid=

"$rnicsim" trace check "$dir/server.rntrace" "$dir/client.rntrace" || fail "trace check"
for side in server client; do
  "$rnicsim" trace convert "$dir/$side.rntrace" "$dir/$side.jsonl" > /dev/null
done
"$rnicsim" replay "$dir/server.rntrace" "$dir/client.rntrace" --timing asap --out "$dir/out" \
  --no-plots > "$dir/replay.log" 2>&1 || fail "replay exited with $?"
cat "$dir/replay.log"

# What the traces say the programs did, counted independently of the replay, against the
# replay's statistics.
/usr/bin/python3 - "$dir" <<'PY' || fail "the replay differs from the recording"
import json, sys
d = sys.argv[1]
stats = json.load(open(f"{d}/out/stats.json"))["stats"]
ok = True
recs = {side: [json.loads(l) for l in open(f"{d}/{side}.jsonl")] for side in ("server", "client")}
for host, side, peer in (("host0", "server", "client"), ("host1", "client", "server")):
    wrs = bytes_ = recv = wcs = 0
    statuses = {}
    # Regions the NIC writes with bytes the traces hold: receive buffers, the peer's WRITE
    # targets (a READ's source is the peer's memory, which the program filled with its CPU).
    peer_write_rkeys = {w["rkey"] for r in recs[peer] if r["call"] == "post_send"
                        for w in r["wr"] if w["op"] in ("WRITE", "WRITE_IMM")}
    written, rkey_of, checked = set(), {}, 0
    for r in recs[side]:
        if r.get("ret", 0) != 0 and r["call"] != "poll_cq":
            continue
        if r["call"] == "reg_mr":
            rkey_of[r["mr"]] = r["rkey"]
        elif r["call"] == "post_send":
            wrs += len(r["wr"])
            bytes_ += sum(e[2] for w in r["wr"] for e in w["sge"])
        elif r["call"] in ("post_recv", "post_srq_recv"):
            recv += len(r["wr"])
            written |= {e[0] for w in r["wr"] for e in w["sge"]}
        elif r["call"] == "poll_cq":
            wcs += len(r["wc"])
            for w in r["wc"]:
                statuses[w["status"]] = statuses.get(w["status"], 0) + 1
        elif r["call"] == "dereg_mr" and "data" in r:
            if r["mr"] in written or rkey_of[r["mr"]] in peer_write_rkeys:
                checked += 1
    g = {k: v["value"] for k, v in stats[f"{host}.replay"].items()}
    print(f"{side}: recorded {wrs} send WRs ({bytes_} B), {recv} receive WRs, {wcs} completions "
          f"{statuses}, {checked} regions the NIC wrote; replay: {g['send_wrs']:.0f} send WRs "
          f"({g['send_bytes']:.0f} B), {g['recv_wrs']:.0f} receive WRs, {g['completions']:.0f} "
          f"completions, {g['completion_mismatches']:.0f} differ, {g['memory_checks']:.0f} regions "
          f"checked, {g['memory_mismatches']:.0f} differ")
    want = (wrs, bytes_, recv, wcs, 0, checked, 0)
    got = (g["send_wrs"], g["send_bytes"], g["recv_wrs"], g["completions"],
           g["completion_mismatches"], g["memory_checks"], g["memory_mismatches"])
    total_posts = locals().get("total_posts", 0) + wrs + recv
    if tuple(int(x) for x in got) != want:
        print(f"  {side}: expected {want}, replay gave {got}")
        ok = False
if total_posts == 0:
    print("the programs posted nothing")
    ok = False
sys.exit(0 if ok else 1)
PY
grep -q "result: OK" "$dir/replay.log" || fail "the replay did not end OK"
echo "PASS ($mode)"

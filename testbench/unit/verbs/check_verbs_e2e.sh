#!/bin/bash
# End to end through `rnicsim serve` (two hosts back to back): unmodified Debian verbs programs
# on our libibverbs.so.1 (`rnicsim attach` puts it first on LD_LIBRARY_PATH). A server on host1
# and a client on host0 (or one program on host0), each must exit 0 with its usual output; then
# serve must stop by itself (--exit-after) with no DMA fault, no refused cleanup and nothing left
# for it to destroy, and tshark must decode every frame of its pcap as RoCE
# (testbench/unit/wire/check_pcap_tshark.sh).
# Usage: check_verbs_e2e.sh RNICSIM MODE PORT [VERBS_SMOKE]
# (mode smoke: VERBS_SMOKE, one process holding both NICs, run without attach; mode fatal:
# VERBS_SMOKE --fatal on host0, serve killed under it.)
set -euo pipefail
rnicsim=$(realpath "$1") mode=$2 port=$3
dir=$(mktemp -d /tmp/rnicsim-verbs-XXXXXX)
serve_pid=
trap '[ -n "$serve_pid" ] && kill $serve_pid 2>/dev/null; [ -n "${RNICSIM_KEEP:-}" ] && echo "kept $dir" || rm -rf "$dir"' EXIT

# MODE: the server's and the client's command lines (no client: one process on host0).
server= client= expect=
case $mode in
  devinfo) server="ibv_devinfo -v"; expect="rnsim_host0" ;;
  devices) server="ibv_devices"; expect="rnsim_host0" ;;
  smoke) server=$(realpath "$4"); expect="PASS" ;;
  fatal) server="$(realpath "$4") --fatal"; expect="PASS" ;;
  rc_pingpong) server="ibv_rc_pingpong -g 0 -n 200 -c -p $port"; expect="iters in" ;;
  rc_pingpong_events) server="ibv_rc_pingpong -g 0 -n 200 -e -c -p $port"; expect="iters in" ;;
  ud_pingpong) server="ibv_ud_pingpong -g 0 -n 200 -s 1024 -c -p $port"; expect="iters in" ;;
  uc_pingpong) server="ibv_uc_pingpong -g 0 -n 200 -c -p $port"; expect="iters in" ;;
  srq_pingpong) server="ibv_srq_pingpong -g 0 -n 200 -q 4 -c -p $port"; expect="iters in" ;;
  write_bw) server="ib_write_bw -x 0 -n 200 -s 65536 -p $port"; expect="#bytes" ;;
  write_lat) server="ib_write_lat -x 0 -n 200 -p $port"; expect="#bytes" ;;
  send_bw) server="ib_send_bw -x 0 -n 200 -p $port"; expect="#bytes" ;;
  send_bw_events) server="ib_send_bw -x 0 -n 200 -e -p $port"; expect="#bytes" ;;
  send_lat) server="ib_send_lat -x 0 -n 200 -p $port"; expect="#bytes" ;;
  send_bw_ud) server="ib_send_bw -x 0 -c UD -n 200 -s 1024 -p $port"; expect="#bytes" ;;
  read_bw) server="ib_read_bw -x 0 -n 200 -p $port"; expect="#bytes" ;;
  read_lat) server="ib_read_lat -x 0 -n 200 -p $port"; expect="#bytes" ;;
  atomic_bw) server="ib_atomic_bw -x 0 -n 200 -p $port"; expect="#bytes" ;;
  write_bw_multi_qp) server="ib_write_bw -x 0 -n 200 -q 4 -p $port"; expect="#bytes" ;;
  atomic_lat) server="ib_atomic_lat -x 0 -n 200 -p $port"; expect="#bytes" ;;
  write_bw_all) server="ib_write_bw -x 0 -a -n 20 -p $port"; expect="8388608" ;;
  write_bw_uc) server="ib_write_bw -x 0 -c UC -n 200 -p $port"; expect="#bytes" ;;
  write_lat_uc) server="ib_write_lat -x 0 -c UC -n 200 -p $port"; expect="#bytes" ;;
  send_bw_uc) server="ib_send_bw -x 0 -c UC -n 200 -p $port"; expect="#bytes" ;;
  send_lat_ud) server="ib_send_lat -x 0 -c UD -n 200 -s 512 -p $port"; expect="#bytes" ;;
  send_lat_uc) server="ib_send_lat -x 0 -c UC -n 200 -p $port"; expect="#bytes" ;;
  read_lat_all) server="ib_read_lat -x 0 -a -n 20 -p $port"; expect="8388608" ;;
  *) echo "unknown mode $mode"; exit 2 ;;
esac
case $mode in
  devinfo) procs=1 ;;
  devices) procs=0 ;;  # lists the devices without opening one: serve is stopped by hand
  smoke) procs=2 ;;  # its two contexts attach once each
  fatal) procs=1 ;;
  *) procs=2; client="$server localhost" ;;
esac
# What the server prints: as the client, but perftest's READ latency server prints no results.
sexpect=$expect
case $mode in read_lat|read_lat_all|atomic_lat) sexpect="local address" ;; esac
# Objects the client leaves for serve to destroy: perftest's unidirectional SEND client creates a
# receive CQ and never destroys it (its destroy_ctx skips it; with -e it does).
leaks=0
case $mode in
  send_bw|send_bw_ud|send_bw_uc) leaks=1 ;;
esac
# perftest's atomic latency server returns without destroying anything (its PD, MR, CQ and QP):
# serve destroys them, as a kernel would.
sleaks=0
[ "$mode" = atomic_lat ] && sleaks=4

exit_after=()
[ "$procs" -gt 0 ] && exit_after=(--exit-after "$procs")
"$rnicsim" serve --dir "$dir/s" --out "$dir/out" "${exit_after[@]}" > "$dir/serve.log" 2>&1 &
serve_pid=$!
for _ in $(seq 100); do [ -f "$dir/s/hosts.json" ] && break; sleep 0.1; done
[ -f "$dir/s/hosts.json" ] || { echo "FAIL: serve did not start"; cat "$dir/serve.log"; exit 1; }

fail() {
  echo "FAIL: $1"
  for f in server client serve; do
    [ -f "$dir/$f.log" ] && { echo "--- $f.log"; tail -40 "$dir/$f.log"; }
  done
  exit 1
}
host=host1
[ -z "$client" ] && host=host0
if [ "$mode" = smoke ]; then
  RNICSIM_SERVE="$dir/s" LD_BIND_NOW=1 timeout 300 "$server" > "$dir/server.log" 2>&1 &
else
  # shellcheck disable=SC2086
  timeout 300 "$rnicsim" attach $host --dir "$dir/s" -- $server > "$dir/server.log" 2>&1 &
fi
spid=$!
if [ -n "$client" ]; then
  # The client connects once the server listens on its TCP port.
  for _ in $(seq 200); do
    ss -ltn 2>/dev/null | grep -q ":$port " && break
    kill -0 $spid 2>/dev/null || break
    sleep 0.1
  done
  # shellcheck disable=SC2086
  timeout 300 "$rnicsim" attach host0 --dir "$dir/s" -- $client > "$dir/client.log" 2>&1 ||
    fail "client exited with $?"
  grep -q -- "$expect" "$dir/client.log" || fail "client output lacks '$expect'"
fi
if [ "$mode" = fatal ]; then
  for _ in $(seq 100); do grep -q ready "$dir/server.log" && break; sleep 0.1; done
  kill -TERM $serve_pid
  wait $serve_pid || true
  serve_pid=
  wait $spid || fail "the program exited with $?"
  grep -q PASS "$dir/server.log" || fail "no PASS"
  cat "$dir/server.log"
  echo PASS
  exit 0
fi
wait $spid || fail "server exited with $?"
grep -q -- "$sexpect" "$dir/server.log" || fail "server output lacks '$sexpect'"
[ "$procs" -eq 0 ] && kill -TERM $serve_pid
for _ in $(seq 300); do kill -0 $serve_pid 2>/dev/null || break; sleep 0.1; done
kill -0 $serve_pid 2>/dev/null && fail "serve did not stop after the processes went"
wait $serve_pid || fail "serve exited with $?"
serve_pid=
echo "--- server"; cat "$dir/server.log"
[ -n "$client" ] && { echo "--- client"; cat "$dir/client.log"; }

/usr/bin/python3 - "$dir/out/stats.json" "$procs" "$leaks" "$sleaks" <<'PY'
import json, sys
j = json.load(open(sys.argv[1]))
procs, leaks, sleaks = int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
k = {h: {n: v["value"] for n, v in j["stats"][h + ".kernel"].items() if "value" in v} for h in ("host0", "host1")}
print("kernel counters:", k)
def need(cond, what):
    if not cond:
        print("FAIL:", what); sys.exit(1)
need(sum(k[h]["attaches"] for h in k) == procs, f"{procs} process(es) attached")
for h in k:
    need(k[h]["dma_faults"] == 0, f"{h}: no DMA fault")
    need(k[h]["sanitizer_reports"] == 0, f"{h}: no sanitizer report")
    want = leaks if h == "host0" else sleaks
    need(k[h]["cleanup_commands"] == want, f"{h}: serve destroyed {want} object(s) the program left")
print("stats: OK")
PY
# The frames decoded independently (tshark: RoCEv2 only, none malformed; the heuristic
# dissectors of payloads off, as the perftest payloads are arbitrary bytes).
if [ -n "$client" ] || [ "$mode" = smoke ]; then
  sh "$(dirname "$0")/../wire/check_pcap_tshark.sh" "$dir/out/wire.pcap" || fail "pcap"
fi
echo PASS

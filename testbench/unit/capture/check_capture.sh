#!/bin/bash
# rnicsim capture (bridge/capture) end to end: unmodified Debian verbs programs recorded on the
# virtual device of `rnicsim serve`, their traces decoded (rntrace.py) and checked
# (check_trace.py) against what the programs did.
# Each pair of traces must also pass `rnicsim trace check`. verbs_smoke's do not: it opens both
# NICs in one process, each gives a QP number 2, and docs/traces.md names a QP by its number alone
# (bridge/capture/README.md, "Limits").
# Usage: check_capture.sh RNICSIM MODE PORT [VERBS_SMOKE]
# Modes:
#   pingpong   ibv_rc_pingpong -n 20, server and client captured (capture inside attach on one
#              side, attach inside capture on the other): objects, RTR's dest_qp = the peer's QP,
#              20 SENDs and 20+20 completions each, all SUCCESS, an end record
#   write_bw   ib_write_bw -n 200: 200 WRITEs, one completion per signaled one
#   ext        VERBS_SMOKE (ibv_wr_*, extended CQs) captured: ext posts and polls
#   hash, full the payload modes: pingpong -c and VERBS_SMOKE (known bytes) with --payload
#   nodevice   Debian's ibv_devices over Debian's own libibverbs (no device): as it runs alone
#              (same status and output), no trace
#   badout     an output that cannot be opened: one message naming it, the program exits 0
#   nested     a libibverbs calling its own exported verbs (as rdma-core's ibv_reg_mr does): one
#              record per program call
#   fork       a child after fork writes FILE.PID, as does a second program of the same run
#   cli        the command's usage errors
set -euo pipefail
rnicsim=$(realpath "$1") mode=$2 port=$3 smoke=${4:-}
here=$(cd "$(dirname "$0")" && pwd)
dir=$(mktemp -d /tmp/rnicsim-capture-XXXXXX)
serve_pid=
trap '[ -n "$serve_pid" ] && kill $serve_pid 2>/dev/null; [ -n "${RNICSIM_KEEP:-}" ] && echo "kept $dir" || rm -rf "$dir"' EXIT

fail() {
  echo "FAIL: $1"
  for f in server client serve program; do
    [ -f "$dir/$f.log" ] && { echo "--- $f.log"; tail -30 "$dir/$f.log"; }
  done
  exit 1
}

start_serve() {  # $1: processes that attach before serve stops by itself
  "$rnicsim" serve --dir "$dir/s" --out "$dir/out" --exit-after "$1" > "$dir/serve.log" 2>&1 &
  serve_pid=$!
  for _ in $(seq 100); do [ -f "$dir/s/hosts.json" ] && break; sleep 0.1; done
  [ -f "$dir/s/hosts.json" ] || fail "serve did not start"
}

stop_serve() {
  for _ in $(seq 300); do kill -0 "$serve_pid" 2>/dev/null || break; sleep 0.1; done
  kill -0 "$serve_pid" 2>/dev/null && fail "serve did not stop after the processes went"
  wait "$serve_pid" || fail "serve exited with $?"
  serve_pid=
}

# A server on host1 and a client on host0, both captured: the server as attach -> capture ->
# program, the client as capture -> attach -> program (both orders compose).
pair() {  # $1: payload mode; the rest: the program and its arguments
  local payload=$1
  shift
  start_serve 2
  timeout 300 "$rnicsim" attach host1 --dir "$dir/s" -- \
    "$rnicsim" capture --out "$dir/server.rntrace" --payload "$payload" -- "$@" \
    > "$dir/server.log" 2>&1 &
  local spid=$!
  for _ in $(seq 200); do
    ss -ltn 2>/dev/null | grep -q ":$port " && break
    kill -0 $spid 2>/dev/null || break
    sleep 0.1
  done
  timeout 300 "$rnicsim" capture --out "$dir/client.rntrace" --payload "$payload" -- \
    "$rnicsim" attach host0 --dir "$dir/s" -- "$@" localhost > "$dir/client.log" 2>&1 ||
    fail "client exited with $?"
  wait $spid || fail "server exited with $?"
  stop_serve
  [ -f "$dir/server.rntrace" ] && [ -f "$dir/client.rntrace" ] || fail "a trace is missing"
  ls -l "$dir"/*.rntrace
  # The project's own validator (bridge/trace) must accept both.
  "$rnicsim" trace check "$dir/server.rntrace" "$dir/client.rntrace" || fail "rnicsim trace check"
}

smoke_run() {  # $1: payload mode
  [ -x "$smoke" ] || fail "no verbs_smoke given"
  start_serve 2
  RNICSIM_SERVE="$dir/s" timeout 300 "$rnicsim" capture --out "$dir/smoke.rntrace" \
    --payload "$1" -- "$smoke" > "$dir/program.log" 2>&1 || fail "verbs_smoke exited with $?"
  grep -q PASS "$dir/program.log" || fail "verbs_smoke did not pass"
  stop_serve
}

check() { /usr/bin/python3 "$here/check_trace.py" "$@" || fail "trace check"; }

case $mode in
  pingpong)
    pair none ibv_rc_pingpong -g 0 -n 20 -p "$port"
    check pingpong "$dir/server.rntrace" "$dir/client.rntrace" 20 ;;
  write_bw)
    pair none ib_write_bw -x 0 -n 200 -s 4096 -p "$port"
    grep -q "#bytes" "$dir/client.log" || fail "ib_write_bw printed no results"
    check write_bw "$dir/server.rntrace" "$dir/client.rntrace" 200 ;;
  ext)
    smoke_run none
    check ext "$dir/smoke.rntrace" none ;;
  hash|full)
    pair "$mode" ibv_rc_pingpong -g 0 -n 20 -c -p "$port"
    check payload "$dir/server.rntrace" "$dir/client.rntrace" "$mode"
    smoke_run "$mode"
    check ext "$dir/smoke.rntrace" "$mode" ;;
  nodevice)
    # Debian's ibv_devices over Debian's libibverbs: no RDMA device here (without the kernel's
    # RDMA support it even fails: "Failed to get IB devices list", status 1). Captured, it must
    # behave exactly as it does alone, and, never opening a device, leave no trace.
    want=0
    ibv_devices > "$dir/alone.log" 2>&1 || want=$?
    got=0
    (cd "$dir" && "$rnicsim" capture --out "$dir/x.rntrace" -- ibv_devices > "$dir/program.log" 2>&1) ||
      got=$?
    [ "$got" -eq "$want" ] || fail "ibv_devices exited with $got captured, $want alone"
    cmp -s "$dir/alone.log" "$dir/program.log" || fail "ibv_devices says something else captured"
    [ ! -e "$dir/x.rntrace" ] || fail "a trace of a program that opened no device"
    echo "ibv_devices: status $got, as alone:"
    cat "$dir/program.log" ;;
  badout)
    start_serve 1
    "$rnicsim" capture --out "$dir/no/such/dir/x.rntrace" -- \
      "$rnicsim" attach host0 --dir "$dir/s" -- ibv_devinfo > "$dir/program.log" 2>&1 ||
      fail "ibv_devinfo exited with $?"
    stop_serve
    grep -q "rnsim_host0" "$dir/program.log" || fail "ibv_devinfo did not list the device"
    want="rnicsim capture: cannot open the trace output $dir/no/such/dir/x.rntrace: No such file or directory; the program runs unrecorded"
    grep -qxF "$want" "$dir/program.log" || fail "no message '$want'"
    [ "$(grep -c "rnicsim capture" "$dir/program.log")" -eq 1 ] || fail "more than one message"
    cat "$dir/program.log" ;;
  nested)
    # A libibverbs that calls its own exported verbs (rdma-core's ibv_reg_mr calls
    # ibv_reg_mr_iova2 through its PLT, which binds to capture's): one call, one record. The null
    # libibverbs of bench_capture_wrapper does the same.
    wrapper=$(dirname "$rnicsim")/bench_capture_wrapper
    [ -x "$wrapper" ] || fail "no $wrapper"
    "$rnicsim" capture --out "$dir/n.rntrace" -- "$wrapper" 10 64 > "$dir/program.log" 2>&1 ||
      fail "bench_capture_wrapper exited with $?"
    "$rnicsim" trace check "$dir/n.rntrace" || fail "rnicsim trace check"
    /usr/bin/python3 - "$here" "$dir/n.rntrace" <<'PY' || fail "trace"
import sys
sys.path.insert(0, sys.argv[1])
import rntrace
r = rntrace.read(sys.argv[2])
regs = [x for x in r if x["call"] == "reg_mr"]
assert r[0]["library"].endswith("libbench_null_verbs.so"), r[0]["library"]
assert len(regs) == 1, f"{len(regs)} reg_mr records for one ibv_reg_mr"
assert sum(len(x["wr"]) for x in r if x["call"] == "post_send") == 10
print("one reg_mr record for one ibv_reg_mr (which called ibv_reg_mr_iova2): OK")
PY
    ;;
  fork)
    # A child after fork writes FILE.PID; so does a second program of the same run (a shell
    # running two), which must not truncate the first one's FILE.
    child_prog=$(dirname "$rnicsim")/capture_fork_child
    [ -x "$child_prog" ] || fail "no $child_prog"
    start_serve 4
    "$rnicsim" capture --out "$dir/f.rntrace" -- "$rnicsim" attach host0 --dir "$dir/s" -- \
      "$child_prog" > "$dir/program.log" 2>&1 || fail "capture_fork_child exited with $?"
    child=$(awk '/^child /{print $2}' "$dir/program.log")
    [ -n "$child" ] && [ -f "$dir/f.rntrace.$child" ] || fail "no trace of the child ($child)"
    "$rnicsim" capture --out "$dir/g.rntrace" -- "$rnicsim" attach host0 --dir "$dir/s" -- \
      sh -c 'ibv_devinfo > /dev/null && ibv_devinfo > /dev/null' > "$dir/program2.log" 2>&1 ||
      fail "the two ibv_devinfo exited with $?"
    stop_serve
    grep -q "g.rntrace exists (written by another process of this capture)" "$dir/program2.log" ||
      fail "no message about the second process"
    second=$(ls "$dir"/g.rntrace.* 2>/dev/null)
    [ -f "$dir/g.rntrace" ] && [ -n "$second" ] || fail "the two programs did not write two traces"
    "$rnicsim" trace check "$dir/f.rntrace" "$dir/f.rntrace.$child" "$dir/g.rntrace" "$second" ||
      fail "rnicsim trace check"
    /usr/bin/python3 - "$here" "$dir/f.rntrace" "$child" <<'PY' || fail "trace"
import sys
sys.path.insert(0, sys.argv[1])
import rntrace
parent, child = rntrace.read(sys.argv[2]), rntrace.read(sys.argv[2] + "." + sys.argv[3])
calls = lambda r: [x["call"] for x in r]
want = ["trace", "open_device", "alloc_pd", "dealloc_pd", "close_device", "end"]
assert calls(parent) == want, calls(parent)
assert calls(child) == want, calls(child)
assert child[0]["pid"] == int(sys.argv[3]) and parent[0]["pid"] != child[0]["pid"]
assert all(x["tid"] == child[0]["pid"] for x in child[1:-1]), "the child's records carry its tid"
print("parent and child traces: OK")
PY
    ;;
  cli)
    expect() {  # $1: exit status wanted, $2: message wanted; the rest: the command
      local want=$1 msg=$2 got=0
      shift 2
      "$@" > "$dir/out.log" 2>&1 || got=$?
      [ "$got" -eq "$want" ] || { cat "$dir/out.log"; fail "'$*' exited with $got, not $want"; }
      [ -z "$msg" ] || grep -qF -- "$msg" "$dir/out.log" || { cat "$dir/out.log"; fail "'$*' did not say '$msg'"; }
      echo "ok: $* -> $got: $(head -1 "$dir/out.log")"
    }
    expect 2 "missing --out FILE" "$rnicsim" capture -- true
    expect 2 "--payload 'sha1' is not none, hash or full" \
      "$rnicsim" capture --out "$dir/x" --payload sha1 -- true
    expect 2 "missing -- PROGRAM" "$rnicsim" capture --out "$dir/x"
    expect 2 "give --out $dir/x.rntrace, then \`rnicsim trace convert $dir/x.rntrace $dir/x.jsonl\`" \
      "$rnicsim" capture --out "$dir/x.jsonl" -- true
    expect 127 "cannot run 'no-such-program-here'" \
      "$rnicsim" capture --out "$dir/x" -- no-such-program-here
    expect 0 "--payload MODE" "$rnicsim" capture --help
    expect 3 "" "$rnicsim" capture --out "$dir/x" -- sh -c 'exit 3'
    [ ! -e "$dir/x" ] || fail "a trace of a program without verbs" ;;
  *) echo "unknown mode $mode"; exit 2 ;;
esac
echo PASS

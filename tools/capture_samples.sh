#!/bin/bash
# Captures the sample traces of traces/ on the virtual device: each program's server on host1 and
# client on host0 of a fresh `rnicsim serve` (configs/serve.toml), both recorded by
# `rnicsim capture` (payload none), converted to JSON Lines as traces/<name>_{server,client}.jsonl.
# Usage: tools/capture_samples.sh [BUILD_DIR]   (default: build; run from the repository root)
# The traces differ from run to run in their times, addresses and keys (they are captures).
set -euo pipefail
build=${1:-build}
rnicsim=$(realpath "$build/bin/rnicsim")
out=$(realpath traces)
dir=$(mktemp -d /tmp/rnicsim-samples-XXXXXX)
serve_pid=
trap '[ -n "$serve_pid" ] && kill $serve_pid 2>/dev/null; rm -rf "$dir"' EXIT
export SC_COPYRIGHT_MESSAGE=DISABLE
port=18990
capture() {  # $1: sample name; the rest: the program and its arguments (the server's)
  local name=$1
  shift
  "$rnicsim" serve --dir "$dir/s" --out "$dir/out" --exit-after 2 > "$dir/serve.log" 2>&1 &
  serve_pid=$!
  for _ in $(seq 100); do [ -f "$dir/s/hosts.json" ] && break; sleep 0.1; done
  "$rnicsim" attach host1 --dir "$dir/s" -- \
    "$rnicsim" capture --out "$dir/$name.server.rntrace" -- "$@" > "$dir/server.log" 2>&1 &
  local spid=$!
  for _ in $(seq 200); do ss -ltn | grep -q ":$port " && break; sleep 0.1; done
  "$rnicsim" attach host0 --dir "$dir/s" -- \
    "$rnicsim" capture --out "$dir/$name.client.rntrace" -- "$@" localhost > "$dir/client.log" 2>&1
  wait $spid
  wait $serve_pid
  serve_pid=
  # The server first (host0 in `rnicsim replay`), as the other samples.
  "$rnicsim" trace convert "$dir/$name.server.rntrace" "$out/${name}_server.jsonl"
  "$rnicsim" trace convert "$dir/$name.client.rntrace" "$out/${name}_client.jsonl"
  rm -rf "$dir/s" "$dir/out"
}
capture ib_write_bw ib_write_bw -p $port -s 4096 -n 1000
capture ib_send_lat ib_send_lat -p $port -s 64 -n 1000
capture ib_read_lat ib_read_lat -p $port -s 64 -n 1000
capture ibv_rc_pingpong ibv_rc_pingpong -g 0 -p $port -s 4096 -n 100
ls -l "$out"/ib_*_{server,client}.jsonl "$out"/ibv_rc_pingpong_*.jsonl

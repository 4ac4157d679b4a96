#!/bin/bash
# Starts `rnicsim serve` (two hosts back to back), runs vdev_client MODE against it, waits for
# serve to stop by itself (--exit-after: once every process it expects has attached and gone),
# and checks serve's stats.json (the kernel half's counters) and its pcap (tshark decodes every
# frame as RoCE). Usage: check_vdev.sh RNICSIM VDEV_CLIENT pair|isolation|abandon|garbage|sanitize|doorbell
set -euo pipefail
rnicsim=$1 client=$2 mode=$3
dir=$(mktemp -d /tmp/rnicsim-vdev-XXXXXX)
trap 'kill $serve_pid 2>/dev/null || true; rm -rf "$dir"' EXIT
case $mode in
  pair|isolation|doorbell) procs=2 ;;
  garbage) procs=4 ;;
  abandon|sanitize) procs=1 ;;
esac
"$rnicsim" serve --dir "$dir/s" --out "$dir/out" --exit-after $procs > "$dir/serve.log" 2>&1 &
serve_pid=$!
for _ in $(seq 100); do [ -f "$dir/s/hosts.json" ] && break; sleep 0.1; done
[ -f "$dir/s/hosts.json" ] || { echo "FAIL: serve did not start"; cat "$dir/serve.log"; exit 1; }
if ! timeout 60 "$client" "$mode" "$dir/s"; then
  echo "FAIL: vdev_client $mode"; cat "$dir/serve.log"; exit 1
fi
for _ in $(seq 300); do kill -0 $serve_pid 2>/dev/null || break; sleep 0.1; done
if kill -0 $serve_pid 2>/dev/null; then
  echo "FAIL: serve did not stop after the processes went"; cat "$dir/serve.log"; exit 1
fi
wait $serve_pid || { echo "FAIL: serve exited with $?"; cat "$dir/serve.log"; exit 1; }
cat "$dir/serve.log"
/usr/bin/python3 - "$dir/out/stats.json" "$mode" "$dir/serve.log" <<'PY'
import json, sys
j = json.load(open(sys.argv[1]))
mode = sys.argv[2]
k = {h: {n: v["value"] for n, v in j["stats"][h + ".kernel"].items() if "value" in v}
     for h in ("host0", "host1")}
print("kernel counters:", k)
def need(cond, what):
    if not cond:
        print("FAIL:", what); sys.exit(1)
frames = j["stats"]["link0"]["a_to_b_frames"]["value"] + j["stats"]["link0"]["b_to_a_frames"]["value"]
if mode == "pair":
    need(k["host0"]["attaches"] == 1 and k["host1"]["attaches"] == 1, "one process attached per host")
    need(k["host0"]["sanitizer_reports"] == 0 and k["host1"]["sanitizer_reports"] == 0, "no sanitizer report")
    need(k["host0"]["dma_faults"] == 0 and k["host1"]["dma_faults"] == 0, "no DMA fault")
    need(k["host1"]["events"] >= 1, "host1's completion event routed to it")
    lat = j["stats"]["host0.kernel"]["send_latency"]
    print("host0 send_latency:", {x: lat[x] for x in ("count", "min", "max") if x in lat})
    need(lat["count"] == 3 and lat["min"] > 0, "host0's WRITE, SEND and READ each timed from doorbell to CQE")
    need(k["host0"]["last_completion"] > k["host0"]["first_doorbell"] > 0, "first doorbell and last completion")
    need(frames > 200, f"the transfers crossed the wire ({frames} frames)")
    need(k["host0"]["cleanup_commands"] == 0 and k["host1"]["cleanup_commands"] == 0, "nothing left to clean up")
elif mode == "isolation":
    need(k["host0"]["attaches"] == 2, "two processes on host0")
    need(k["host0"]["refused_commands"] >= 1, "the forged MODIFY_QP refused")
    need(k["host0"]["refused_mmio"] >= 4, "the forged doorbell, two register writes and a register read refused")
    need(k["host0"]["cleanup_commands"] == 0, "both processes destroyed what they made")
elif mode == "abandon":
    need(k["host1"]["cleanup_commands"] == 4, "serve destroyed the QP, MR, CQ and PD the process left")
    need(k["host1"]["sanitizer_reports"] == 0, "every destroy succeeded")
elif mode == "garbage":
    need(k["host0"]["attaches"] == 2 and k["host1"]["attaches"] == 2, "the garbage, dying and pair processes attached")
    need(k["host0"]["refused_commands"] + k["host0"]["refused_mmio"] > 100, "the random commands and writes were refused")
    need(frames > 200, f"the last exchange crossed the wire ({frames} frames)")
elif mode == "doorbell":
    log = open(sys.argv[3]).read()
    need(k["host0"]["attaches"] == 2, "two processes on host0")
    need(k["host0"]["refused_mmio"] == 2, "exactly the two forged doorbell writes refused")
    need(log.count("which is another process's: refused") == 2,
         "serve's log names both writes as another process's doorbell")
    need(k["host0"]["cleanup_commands"] == 0, "both processes destroyed what they made")
elif mode == "sanitize":
    log = open(sys.argv[3]).read()
    for what, text in (("the bad lkey", "send WQE 0: lkey"), ("the jumping index", "DB_RANGE"),
                       ("the bad opcode", "(opcode 126,"), ("the SGE count", "200 SGEs) refused"),
                       ("the CQ overrun", "overrun: 2 CQEs not consumed"),
                       ("the dead QP's doorbell", "which does not exist")):
        need(text in log, f"serve's log names {what} ({text!r})")
    need(k["host0"]["sanitizer_reports"] >= 6, "six sanitizer reports")
print("stats: OK")
PY
if [ "$mode" = pair ]; then
  n=$(tshark -r "$dir/out/wire.pcap" 2>/dev/null | wc -l)
  bad=$(tshark -r "$dir/out/wire.pcap" -Y "_ws.malformed || _ws.expert.severity >= error || !infiniband" 2>/dev/null | wc -l)
  echo "pcap: $n frames, $bad malformed or not RoCE"
  [ "$n" -gt 200 ] && [ "$bad" -eq 0 ] || { echo "FAIL: pcap"; exit 1; }
fi
echo PASS

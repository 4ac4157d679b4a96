#!/bin/sh
# Runs a short version of a scenario and checks its wire.pcap with two independent decoders:
# tshark (every frame decodes as RoCEv2/InfiniBand, none malformed, no unknown opcode) and Scapy
# (every ICRC recomputed from the bytes).
#   check_run_pcap.sh RNICSIM CONFIG WIRE_TEST_DIR [KEY=VALUE...]
# The scenario is cut short by the KEY=VALUE settings given (default: those of
# configs/default.toml's workloads).
set -eu
rnicsim=$1
config=$2
wire=$3
shift 3
[ $# -gt 0 ] || set -- write_bw.iterations=40 write_bw.size=20000 send_lat.iterations=20
sets=""
for kv in "$@"; do sets="$sets --set $kv"; done
out=$(mktemp -d /tmp/rnicsim-pcap-XXXXXX)
trap 'rm -rf "$out"' EXIT
# shellcheck disable=SC2086 # $sets: one word per --set and KEY=VALUE (no spaces in them)
"$rnicsim" run "$config" --out "$out" --no-plots $sets --set capture.max_packets=0 \
  >"$out/report.txt"
grep -q "result: OK" "$out/report.txt"
# tshark as a user runs it: its heuristic dissectors of SEND payloads left on.
sh "$wire/check_pcap_tshark.sh" --keep-heuristics "$out/wire.pcap"
/usr/bin/python3 "$wire/check_icrc_scapy.py" "$out/wire.pcap"
# Optionally, frames tshark must find (a display filter, e.g. UD datagrams' DETH fields).
if [ -n "${RNICSIM_PCAP_EXPECT:-}" ]; then
  n=$(tshark -r "$out/wire.pcap" -Y "$RNICSIM_PCAP_EXPECT" 2>/dev/null | wc -l)
  [ "$n" -gt 0 ] || { echo "no frame matches '$RNICSIM_PCAP_EXPECT'" >&2; exit 1; }
  echo "$n frames match '$RNICSIM_PCAP_EXPECT'"
fi

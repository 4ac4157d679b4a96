#!/bin/sh
# Independent decode of a RoCEv2 pcap with tshark. Usable on any rnicsim capture.
#
#   check_pcap_tshark.sh [--strict] [--keep-heuristics] PCAP
#
# Fails (exit 1) if
#   - any frame is malformed or carries a tshark expert item of severity Error,
#   - any frame to UDP port 4791 is not decoded as InfiniBand (no BTH opcode),
#   - any BTH opcode is outside what rnicsim sends: RC 0x00-0x14, 0x16, 0x17; UC 0x20-0x2B;
#     UD 0x64, 0x65; CNP 0x81 (tshark itself shows the CNP as "Unknown (129)": accepted here),
#   - no RoCE frame was decoded at all.
# Expert warnings are listed; --strict makes them fatal too.
# By default the heuristic sub-dissectors that tshark tries on SEND/WRITE payloads (RPC-over-
# RDMA, SMB Direct, SMC-R, NVMe-oF, iSER, Lustre LNet, SDP, FCoIB, EoIB) are turned off: the
# simulator's payloads are arbitrary bytes and those dissectors report them as malformed (e.g.
# a 2-byte SEND is "Malformed Packet: RPCoRDMA"). --keep-heuristics leaves them on.
# tshark does not verify the ICRC: check_icrc_scapy.py does.
set -eu

strict=0
heur=1
pcap=""
for a in "$@"; do
  case "$a" in
    --strict) strict=1 ;;
    --keep-heuristics) heur=0 ;;
    -*) echo "usage: $0 [--strict] [--keep-heuristics] PCAP" >&2; exit 2 ;;
    *) pcap=$a ;;
  esac
done
[ -n "$pcap" ] || { echo "usage: $0 [--strict] [--keep-heuristics] PCAP" >&2; exit 2; }
[ -r "$pcap" ] || { echo "check_pcap_tshark: cannot read $pcap" >&2; exit 2; }
command -v tshark >/dev/null 2>&1 || { echo "check_pcap_tshark: tshark not found" >&2; exit 2; }

opts=""
if [ "$heur" = 1 ]; then
  # Protocols registered as heuristics on InfiniBand payloads (except the generic ethertype one,
  # which is turned off as a heuristic below; disabling the protocol would break Ethernet).
  for p in $(tshark -G heuristic-decodes 2>/dev/null |
             awk '$1 == "infiniband.payload" && $2 != "ethertype" && $2 !~ /^infiniband/ {print $2}'); do
    opts="$opts --disable-protocol $p"
  done
  # Heuristic (not protocol) names; keep only those this tshark knows.
  for h in eth_over_ib mellanox_eoib; do
    if tshark -r "$pcap" -c 1 --disable-heuristic "$h" >/dev/null 2>&1; then
      opts="$opts --disable-heuristic $h"
    fi
  done
fi

out=$(mktemp)
trap 'rm -f "$out"' EXIT
# shellcheck disable=SC2086
if ! tshark -r "$pcap" $opts -T fields -E separator=/t -E occurrence=a -E aggregator='; ' \
    -e frame.number -e udp.dstport -e infiniband.bth.opcode -e _ws.malformed \
    -e _ws.expert.severity -e _ws.expert.message -e _ws.col.Info >"$out" 2>"$out.err"; then
  echo "check_pcap_tshark: tshark failed on $pcap:" >&2
  grep -v '^Running as user' "$out.err" >&2 || true
  rm -f "$out.err"
  exit 1
fi
rm -f "$out.err"

awk -F'\t' -v strict="$strict" -v pcap="$pcap" '
BEGIN {
  for (o = 0; o <= 20; o++) known[o] = 1
  known[22] = 1; known[23] = 1
  for (o = 32; o <= 43; o++) known[o] = 1
  known[100] = 1; known[101] = 1; known[129] = 1
  frames = 0; roce = 0; bad = 0; warns = 0
}
{
  frames++
  fn = $1; dport = $2; op = $3; malformed = $4; sev = $5; msg = $6; info = $7
  # Severity values: note 0x400000, warn 0x600000, error 0x800000.
  maxsev = 0
  n = split(sev, s, "; ")
  for (i = 1; i <= n; i++) if (s[i] + 0 > maxsev) maxsev = s[i] + 0
  if (op != "") {
    roce++
    split(op, ops, "; ")
    opc = ops[1] + 0
    count[opc]++
    if (!(opc in known)) {
      printf("FAIL frame %s: unknown/unsupported opcode %d (0x%02x): %s\n", fn, opc, opc, info)
      bad++
    }
  } else if (dport ~ /(^|; )4791($|; )/) {
    printf("FAIL frame %s: UDP port 4791 but not decoded as InfiniBand: %s\n", fn, info)
    bad++
  }
  if (malformed != "" || maxsev >= 8388608) {
    printf("FAIL frame %s: malformed/error: %s [%s]\n", fn, info, msg)
    bad++
  } else if (maxsev >= 6291456) {
    printf("%s frame %s: expert warning: %s [%s]\n", strict ? "FAIL" : "WARN", fn, info, msg)
    warns++
    if (strict) bad++
  }
}
END {
  printf("check_pcap_tshark: %s: %d frames, %d RoCE frames decoded, %d problems, %d warnings\n",
         pcap, frames, roce, bad, warns)
  line = ""
  for (o = 0; o < 256; o++) if (o in count) line = line sprintf(" 0x%02x:%d", o, count[o])
  if (line != "") printf("  opcodes:%s\n", line)
  if (roce == 0) { print "FAIL: no RoCE frame decoded"; exit 1 }
  if (bad > 0) exit 1
  print "check_pcap_tshark: OK"
}' "$out"

#!/bin/sh
# Runs a frame dumper into PCAP, then a checker on PCAP.
#   with_dumped_pcap.sh PCAP DUMPER [ARGS...] -- CHECKER [ARGS...]
# Both commands get PCAP appended as their last argument. Exit status: the checker's.
set -eu
pcap=$1
shift
dump=""
while [ $# -gt 0 ] && [ "$1" != "--" ]; do
  dump="$dump '$1'"
  shift
done
[ $# -gt 0 ] || { echo "usage: $0 PCAP DUMPER [ARGS...] -- CHECKER [ARGS...]" >&2; exit 2; }
shift
rm -f "$pcap"
eval "$dump '$pcap'"
"$@" "$pcap"

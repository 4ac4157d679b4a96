#!/bin/sh
# A speed trick is simulator bookkeeping: a run with it and a run without must give the same wire
# (byte-identical pcap) and the same stats.json, except wall-clock times, the setting itself and
# the trick's own counters; with a pcap of every frame and without one. The tricks:
#   sim.share_pages     pages mapped copy-on-write instead of copied (its counters: pages mapped
#                       shared, copied on write; the run with it must have shared pages)
#   sim.icrc_seal       receivers trust the ICRC their simulated sender sealed
#   sim.prefetch_hints  QP contexts and regions loaded into the CPU cache ahead of use
#   sim.cache_memo      the context caches answer their last lookup again without a tag search
#                       (default.toml's cx5 preset has the caches on)
#   check_speed_trick_same.sh RNICSIM CONFIG KEY
set -eu
rnicsim=$1
config=$2
key=$3
out=$(mktemp -d /tmp/rnicsim-trick-XXXXXX)
trap 'rm -rf "$out"' EXIT
# With the whole wire recorded (the tap copies every payload into its frame), then without a pcap
# (payloads stay in the pages the frames refer to; every workload still checks every byte).
for capture in all none; do
  for share in true false; do
    if [ $capture = all ]; then cap="--set capture.max_packets=0"; else cap="--set capture.pcap=false"; fi
    "$rnicsim" run "$config" --out "$out/$capture-$share" --no-plots --set $key=$share \
      --set run.workloads=write_bw,send_bw,read_bw,atomic_bw,write_lat,send_lat,read_lat,atomic_lat \
      --set write_bw.iterations=60 \
      --set send_bw.iterations=60 --set write_lat.iterations=30 --set send_lat.iterations=30 \
      --set read_bw.iterations=60 --set read_bw.qps=2 --set atomic_bw.iterations=60 \
      --set read_lat.iterations=30 --set atomic_lat.iterations=30 \
      --set write_bw.qps=3 --set send_bw.sges=2 $cap >"$out/$capture-$share.txt"
    grep -q "result: OK" "$out/$capture-$share.txt"
  done
  [ $capture = none ] || cmp "$out/all-true/wire.pcap" "$out/all-false/wire.pcap"
  /usr/bin/python3 - "$out/$capture-true/stats.json" "$out/$capture-false/stats.json" "$key" <<'PY'
import json, sys
def flat(o, p=""):
    if isinstance(o, dict):
        for k, v in o.items():
            yield from flat(v, p + "." + k)
    elif isinstance(o, list):
        for i, v in enumerate(o):
            yield from flat(v, f"{p}[{i}]")
    else:
        yield p, o
on, off = (dict(flat(json.load(open(f)))) for f in sys.argv[1:3])
key = sys.argv[3]
skip = ("wall_second", "config." + key)
if key == "sim.share_pages":
    skip += ("mem_pages_mapped_shared", "mem_pages_copied_on_write")
diff = sorted(k for k in set(on) | set(off) if on.get(k) != off.get(k) and not any(s in k for s in skip))
shared = sum(v for k, v in on.items() if k.endswith("mem_pages_mapped_shared.value"))
print(f"check_speed_trick_same {key}: {len(on)} values, {len(diff)} differ; {int(shared)} pages mapped shared")
for k in diff[:20]:
    print(f"  {k}: {on.get(k)} with the trick, {off.get(k)} without")
if diff or (key == "sim.share_pages" and shared == 0):  # the premise: sharing happened
    sys.exit(1)
PY
done
echo "check_speed_trick_same $key: OK (same pcap, same statistics)"

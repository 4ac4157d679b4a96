#!/bin/sh
# The link's protocol checker (link.check) only watches, and fault injection with every
# probability 0 and no rule is off: runs with the checker on, with another fault seed, and with
# neither must give the same wire (byte-identical pcap) and the same stats.json, except
# wall-clock times, the settings themselves and the checker's own statistics.
#   check_link_observers_same.sh RNICSIM CONFIG
set -eu
rnicsim=$1
config=$2
out=$(mktemp -d /tmp/rnicsim-observers-XXXXXX)
trap 'rm -rf "$out"' EXIT
for run in plain check seed; do
  case $run in
    plain) extra="" ;;
    check) extra="--set link.check=true" ;;
    seed) extra="--set link.seed=12345 --set link.reorder_delay=3us" ;;
  esac
  "$rnicsim" run "$config" --out "$out/$run" --no-plots --set capture.max_packets=0 \
    --set run.workloads=write_bw,send_bw,read_bw,atomic_bw,write_lat,send_lat,read_lat,atomic_lat \
    --set write_bw.iterations=60 \
    --set send_bw.iterations=60 --set write_lat.iterations=30 --set send_lat.iterations=30 \
    --set read_bw.iterations=60 --set read_bw.qps=2 --set atomic_bw.iterations=60 \
    --set read_lat.iterations=30 --set atomic_lat.iterations=30 \
    --set write_bw.qps=3 $extra >"$out/$run.txt"
  grep -q "result: OK" "$out/$run.txt"
done
grep -q "protocol check: [0-9]* frames, no violation" "$out/check.txt"
[ ! -e "$out/plain/faults.csv" ] && [ ! -e "$out/plain/violations.csv" ]
for run in check seed; do
  cmp "$out/plain/wire.pcap" "$out/$run/wire.pcap"
  /usr/bin/python3 - "$out/plain/stats.json" "$out/$run/stats.json" <<'PY'
import json, sys
def flat(o, p=""):
    if isinstance(o, dict):
        for k, v in o.items():
            yield from flat(v, p + "." + k)
    else:
        yield p, o
a, b = (dict(flat(json.load(open(f)))) for f in sys.argv[1:3])
skip = ("wall_second", "config.link.check", "config.link.seed", "config.link.reorder_delay",
        ".stats.link0.check.")
diff = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k) and not any(s in k for s in skip))
print(f"check_link_observers_same: {sys.argv[2]}: {len(a)} values, {len(diff)} differ")
for k in diff[:20]:
    print(f"  {k}: {a.get(k)} / {b.get(k)}")
sys.exit(1 if diff else 0)
PY
done
echo "check_link_observers_same: OK (same pcap, same statistics)"

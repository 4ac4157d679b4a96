#!/bin/bash
# rdma-core's own Python test suite (python3-pyverbs ships it in /usr/share/doc/rdma-core/tests)
# on our libibverbs, through `rnicsim serve`: each test runs both of its ends in one process on
# host0's NIC. The vendor tests (mlx5, EFA, CUDA) are left out: their modules need the real
# libmlx5/libefa, which our stubs replace; utils.py's imports of them are made optional. Every
# test must pass or be skipped as unsupported, at least MIN_OK must pass, and serve must see no
# DMA fault. Usage: check_pyverbs_suite.sh RNICSIM [MIN_OK]   (exit 77: the suite is not installed)
set -euo pipefail
rnicsim=$(realpath "$1") min_ok=${2:-75}
src=/usr/share/doc/rdma-core/tests
[ -f "$src/run_tests.py" ] || { echo "SKIP: $src not installed (python3-pyverbs)"; exit 77; }
dir=$(mktemp -d /tmp/rnicsim-pyverbs-XXXXXX)
serve_pid=
trap '[ -n "$serve_pid" ] && kill $serve_pid 2>/dev/null; [ -n "${RNICSIM_KEEP:-}" ] && echo "kept $dir" || rm -rf "$dir"' EXIT

cp -r "$src" "$dir/tests"
gunzip -f "$dir"/tests/*.gz
rm -f "$dir"/tests/test_mlx5_* "$dir"/tests/mlx5_* "$dir"/tests/*efa* "$dir"/tests/*cuda*
/usr/bin/python3 - "$dir/tests/utils.py" <<'PY'
import sys
p = sys.argv[1]
s = open(p).read()
for line, stub in [
        ("from tests.efa_base import SRDResources", "class SRDResources: pass"),
        ("from pyverbs.providers.efa.efadv import EfaCQ", "class EfaCQ: pass"),
        ("from tests.mlx5_base import Mlx5DcResources, Mlx5DcStreamsRes",
         "class Mlx5DcResources: pass\n    class Mlx5DcStreamsRes: pass"),
        ("import pyverbs.providers.mlx5.mlx5_enums as me", "me = None")]:
    if line + "\n" not in s:
        sys.exit(f"utils.py: '{line}' not found")
    s = s.replace(line + "\n", f"try:\n    {line}\nexcept ImportError:\n    {stub}\n", 1)
open(p, "w").write(s)
PY

# Each test opens its own contexts (an attach each): serve runs until told to stop.
"$rnicsim" serve --dir "$dir/s" --out "$dir/out" > "$dir/serve.log" 2>&1 &
serve_pid=$!
for _ in $(seq 100); do [ -f "$dir/s/hosts.json" ] && break; sleep 0.1; done
[ -f "$dir/s/hosts.json" ] || { echo "FAIL: serve did not start"; cat "$dir/serve.log"; exit 1; }
cd "$dir"
rc=0
timeout 1200 "$rnicsim" attach host0 --dir "$dir/s" -- /usr/bin/python3 tests/run_tests.py \
  --dev rnsim_host0 --gid 0 -v > "$dir/suite.log" 2>&1 || rc=$?
grep -E "\.\.\. (ok|FAIL|ERROR|skipped.*)$" "$dir/suite.log" || true
tail -5 "$dir/suite.log"
ok=$(grep -c "\.\.\. ok$" "$dir/suite.log" || true)
echo "passed: $ok (at least $min_ok expected)"
if [ $rc -ne 0 ]; then
  grep -E -A 15 "^(ERROR|FAIL):" "$dir/suite.log" | head -80
  echo "FAIL: the suite exited with $rc"; exit 1
fi
[ "$ok" -ge "$min_ok" ] || { echo "FAIL: only $ok tests passed"; exit 1; }
kill -TERM $serve_pid
wait $serve_pid || { echo "FAIL: serve exited with $?"; cat "$dir/serve.log"; exit 1; }
serve_pid=
/usr/bin/python3 - "$dir/out/stats.json" <<'PY'
import json, sys
j = json.load(open(sys.argv[1]))
k = {n: v["value"] for n, v in j["stats"]["host0.kernel"].items() if "value" in v}
print("host0 kernel counters:", k)
if k["dma_faults"] or k["sanitizer_reports"]:
    print("FAIL: DMA faults or sanitizer reports"); sys.exit(1)
PY
echo PASS

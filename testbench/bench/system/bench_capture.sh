#!/bin/bash
# The cost of capture (bridge/capture, docs/performance.md "Capture"), measured two ways:
# 1. The wrappers alone: bench_capture_wrapper over a null libibverbs whose post and poll do
#    nothing, N calls each of ibv_post_send (one WRITE, one SGE of SIZE bytes), ibv_post_recv and
#    ibv_poll_cq (one completion every other call), without capture and with each payload mode.
#    Best of RUNS (the machine is shared: the minimum is the least disturbed).
# 2. On the virtual device: bench_capture_post, an RC QP between the two NICs of `rnicsim serve`,
#    POSTS WRITEs of 64 bytes, the posting thread's CPU time per ibv_post_send without and with
#    capture. Median of RUNS (serve shares the machine; the spread is printed).
# Usage: bench_capture.sh [BUILD_DIR] [RUNS]   (default build/, 5)
set -euo pipefail
cd "$(dirname "$0")/../../.."
build=${1:-build}
runs=${2:-5}
rnicsim=$PWD/$build/bin/rnicsim
wrapper=$PWD/$build/bin/bench_capture_wrapper
post=$PWD/$build/bin/bench_capture_post
for f in "$rnicsim" "$wrapper" "$post" "$PWD/$build/lib/librnicsim_capture.so"; do
  [ -e "$f" ] || { echo "missing $f (cmake --build $build --target rnicsim bench_capture_wrapper bench_capture_post)"; exit 2; }
done
export SC_COPYRIGHT_MESSAGE=DISABLE
work=$(mktemp -d /tmp/rnicsim-bench-capture-XXXXXX)
serve_pid=
trap '[ -n "$serve_pid" ] && kill $serve_pid 2>/dev/null; rm -rf "$work"' EXIT
calls=1000000
posts=20000

# One line of results per run: MODE SIZE key=value...
for size in 64 4096; do
  for _ in $(seq "$runs"); do
    echo "plain $size $("$wrapper" $calls $size)" >> "$work/wrapper.txt"
    for mode in none hash full; do
      echo "$mode $size $("$rnicsim" capture --out "$work/w.rntrace" --payload $mode -- "$wrapper" $calls $size)" \
        >> "$work/wrapper.txt"
      ls -l "$work/w.rntrace" | awk -v m=$mode -v s=$size '{print m, s, "bytes=" $5}' >> "$work/sizes.txt"
    done
  done
done

"$rnicsim" serve --dir "$work/s" --out "$work/out" > "$work/serve.log" 2>&1 &
serve_pid=$!
for _ in $(seq 100); do [ -f "$work/s/hosts.json" ] && break; sleep 0.1; done
export RNICSIM_SERVE=$work/s
for _ in $(seq "$runs"); do
  echo "plain 64 $("$post" $posts 64)" >> "$work/post.txt"
  echo "none 64 $("$rnicsim" capture --out "$work/p.rntrace" -- "$post" $posts 64)" >> "$work/post.txt"
done
kill -TERM $serve_pid
wait $serve_pid || true
serve_pid=

/usr/bin/python3 - "$work" "$calls" "$posts" <<'PY'
import collections, statistics, sys
work, calls, posts = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
def load(name):
    rows = collections.defaultdict(list)
    for line in open(f"{work}/{name}"):
        mode, size, *kv = line.split()
        rows[(mode, int(size))].append({k: float(v) for k, v in (x.split("=") for x in kv)})
    return rows
w, sizes, p = load("wrapper.txt"), load("sizes.txt"), load("post.txt")
print(f"1. The wrappers alone (bench_capture_wrapper, {calls} calls each, best of "
      f"{len(w[('plain', 64)])} runs; ns per call; added = with capture - without)")
print(f"{'payload':8} {'SGE bytes':>9} {'post_send':>10} {'added':>7} {'post_recv':>10} "
      f"{'added':>7} {'poll_cq':>8} {'added':>7} {'bytes/record':>13}")
for size in (64, 4096):
    base = {k: min(r[k] for r in w[("plain", size)]) for k in ("post_send_ns", "post_recv_ns", "poll_cq_ns")}
    for mode in ("plain", "none", "hash", "full"):
        b = {k: min(r[k] for r in w[(mode, size)]) for k in base}
        rec = "" if mode == "plain" else f"{sizes[(mode, size)][0]['bytes'] / (3 * calls):13.0f}"
        add = lambda k: "" if mode == "plain" else f"{b[k] - base[k]:7.1f}"
        print(f"{mode if mode != 'plain' else '(none)':8} {size:9} {b['post_send_ns']:10.1f} {add('post_send_ns'):>7} "
              f"{b['post_recv_ns']:10.1f} {add('post_recv_ns'):>7} {b['poll_cq_ns']:8.1f} {add('poll_cq_ns'):>7} {rec:>13}")
print("   ((none): no capture. A poll that finds nothing is counted, not recorded: half the polls.)")
print()
print(f"2. On the virtual device (bench_capture_post, {posts} WRITEs of 64 bytes, median of "
      f"{len(p[('plain', 64)])} runs; the posting thread's CPU ns per ibv_post_send)")
print(f"{'':16} {'median':>8} {'min':>8} {'max':>8} {'wall ns/post':>13}")
med = {}
for mode, label in (("plain", "without capture"), ("none", "with capture")):
    xs = [r["post_cpu_ns"] for r in p[(mode, 64)]]
    med[mode] = statistics.median(xs)
    wall = statistics.median(r["wall_ns"] for r in p[(mode, 64)])
    print(f"{label:16} {med[mode]:8.0f} {min(xs):8.0f} {max(xs):8.0f} {wall:13.0f}")
print(f"{'added':16} {med['none'] - med['plain']:8.0f}")
PY

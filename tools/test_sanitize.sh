#!/bin/bash
# Builds rnicsim with AddressSanitizer and UndefinedBehaviorSanitizer (-DRNICSIM_SANITIZE=ON) into
# build-sanitize/ and runs the fast tests under them: every test but the long system runs (1 GiB
# and 64 MiB WRITEs, goodput at every MTU), which add minutes and no code path of their own.
# Any report fails the run (halt_on_error). The tests that load our libibverbs into Debian's
# programs (verbs.e2e.*, the loading checks, capture.* and replay.roundtrip.*, which preload librnicsim_capture.so into
# them) are left out: an instrumented library cannot be
# loaded into a program without the sanitizer runtime; vdev.* run serve instrumented. Installs what is missing first, as tools/build.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/install-deps.sh
export SC_COPYRIGHT_MESSAGE=DISABLE
cmake -S . -B build-sanitize -DRNICSIM_SANITIZE=ON -DRNICSIM_WERROR="${RNICSIM_WERROR:-ON}" \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build-sanitize -j"${JOBS:-2}"
# SystemC allocates its kernel objects once per process and never frees them: leak reports at exit
# would be about the library, not about us.
export ASAN_OPTIONS=detect_leaks=0:halt_on_error=1:abort_on_error=0
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
ctest --test-dir build-sanitize -j"${JOBS:-2}" --output-on-failure --timeout 900 \
  -E 'WRITE of 1 GiB|WRITE of 64 MiB|Goodput reaches|style\.|docs\.|verbs\.e2e|verbs\.our library loads|verbs\.ibv_devices|verbs\.pyverbs|capture\.|replay\.roundtrip'

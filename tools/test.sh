#!/bin/bash
# The README's test command: installs what is missing, builds, runs every test with CTest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/build.sh
export SC_COPYRIGHT_MESSAGE=DISABLE
ctest --test-dir build -j"${JOBS:-2}" --output-on-failure --timeout 600

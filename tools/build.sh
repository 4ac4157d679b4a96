#!/bin/bash
# Installs what is missing, then configures and builds rnicsim into build/ (incremental).
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/install-deps.sh
export SC_COPYRIGHT_MESSAGE=DISABLE  # test discovery runs SystemC binaries during the build
cmake -S . -B build -DRNICSIM_WERROR="${RNICSIM_WERROR:-ON}" >/dev/null
cmake --build build -j"${JOBS:-2}"

#!/bin/bash
# The README's main command: installs what is missing, builds, and runs the default two-host
# scenario (configs/default.toml), printing a report and writing stats.json, wire.pcap and plots
# into out/ (or the folder given as the first argument). Extra arguments go to `rnicsim run`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/build.sh
out="${1:-out}"
shift || true
export SC_COPYRIGHT_MESSAGE=DISABLE
build/bin/rnicsim run configs/default.toml --out "$out" "$@"

#!/bin/bash
# Installs the Debian 12 packages rnicsim needs, only those missing. Needs root (or sudo) when
# something is missing. docs/dependencies.md says why each package is here.
set -euo pipefail
PACKAGES=(
  cmake g++ make pkg-config clang-format # toolchain
  libsystemc-dev                         # simulation kernel (SystemC 2.3.4, built for C++17)
  catch2                                 # unit and system tests (v2.13)
  libboost-dev libboost-program-options-dev
  libtomlplusplus-dev                    # configuration files
  nlohmann-json3-dev                     # stats.json
  libfmt-dev                             # formatting
  libpcap-dev                            # wire.pcap
  libisal-dev                            # CRC-32 for the ICRC (PCLMUL, ~50 GB/s)
  tshark                                 # independent decode of our packets (tests)
  python3-scapy                          # independent ICRC check (tests)
  python3-matplotlib                     # plots of a run
  libibverbs-dev                         # verbs.h: our libibverbs.so.1 (the virtual device)
  perftest ibverbs-utils python3-pyverbs # unmodified verbs programs run on the virtual device
)
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
echo "install-deps: installing ${missing[*]}"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null; then SUDO=sudo; else
    echo "install-deps: missing packages (${missing[*]}) and not root: run as root" >&2
    exit 1
  fi
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null

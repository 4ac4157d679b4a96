#!/bin/bash
# Fails if a C++ file tracked by git is not formatted as .clang-format says (generated files
# excepted: tools/gen_device_interface.py writes them).
set -euo pipefail
cd "$(dirname "$0")/.."
mapfile -t files < <(git ls-files '*.cpp' '*.h' | grep -v -e 'model/device/device_interface.h' \
                                                      -e 'model/device/device_interface_strings.cpp')
clang-format --dry-run -Werror "${files[@]}"
echo "check_format: ${#files[@]} files formatted"

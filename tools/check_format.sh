#!/bin/bash
# Fails if a C++ file tracked by git is not formatted as .clang-format says (generated files too:
# tools/gen_device_interface.py formats what it writes).
set -euo pipefail
cd "$(dirname "$0")/.."
mapfile -t files < <(git ls-files '*.cpp' '*.h')
clang-format --dry-run -Werror "${files[@]}"
echo "check_format: ${#files[@]} files formatted"

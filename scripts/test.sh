#!/usr/bin/env bash
# The whole test suite: configure, build, run every unit and integration test.
# Usage: bash scripts/test.sh [build-dir]     (default: ./build)
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
build="${1:-$repo/build}"
jobs="${FLOWFOLD_JOBS:-$(nproc)}"

# The optimized build, profile-guided (scripts/build.sh), with the tests.
bash "$repo/scripts/build.sh" "$build" -DFLOWFOLD_BUILD_TESTS=ON
cd "$build"
# A hung test fails after 5 minutes instead of eating the CI budget.
ctest --output-on-failure --timeout 300 -j "$jobs"

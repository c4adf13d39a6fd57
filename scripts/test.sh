#!/usr/bin/env bash
# README quick start #2: set up, build, and run the whole test suite (CTest).
# With IRQLAB_SANITIZE=address,undefined it builds and tests a sanitizer
# build in build-sanitize/ instead.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
if [ -n "${IRQLAB_SANITIZE:-}" ]; then
  export BUILD_DIR=build-sanitize
  scripts/build.sh -DIRQLAB_SANITIZE="$IRQLAB_SANITIZE"
else
  export BUILD_DIR=build
  scripts/build.sh
fi
ctest --test-dir "$BUILD_DIR" --output-on-failure -j "$(nproc)"

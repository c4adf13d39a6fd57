#!/usr/bin/env bash
# Configures and builds irqlab into build/ (Ninja, RelWithDebInfo).
# Extra arguments go to cmake's configure step, e.g.
#   scripts/build.sh -DIRQLAB_SANITIZE=address,undefined
# BUILD_DIR overrides the build directory.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build}
cmake -S . -B "$BUILD_DIR" -G Ninja "$@" >/dev/null
cmake --build "$BUILD_DIR" -j "$(nproc)"

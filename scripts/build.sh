#!/usr/bin/env bash
# Configures and builds irqlab into build/ (Ninja, RelWithDebInfo).
# Extra arguments go to cmake's configure step, e.g.
#   scripts/build.sh -DIRQLAB_SANITIZE=address,undefined
# BUILD_DIR overrides the build directory; BUILD_TARGET builds one target
# (e.g. irqlab) instead of everything.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build}
cmake -S . -B "$BUILD_DIR" -G Ninja "$@" >/dev/null
cmake --build "$BUILD_DIR" -j "$(nproc)" ${BUILD_TARGET:+--target "$BUILD_TARGET"}

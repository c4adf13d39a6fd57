#!/usr/bin/env bash
# README quick start #1: set up, build, and run the main job
# (`irqlab` with its built-in default scenario). Arguments go to irqlab.
# Builds only the irqlab binary (scripts/test.sh builds the rest); apt's
# output goes to build/setup.log and is shown only if set-up fails.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build}
mkdir -p "$BUILD_DIR"
start=$SECONDS
echo "demo: [1/3] installing dependencies (apt-get; log in $BUILD_DIR/setup.log)"
if ! scripts/setup.sh > "$BUILD_DIR/setup.log" 2>&1; then
  cat "$BUILD_DIR/setup.log" >&2
  echo "demo: set-up failed (log above)" >&2
  exit 1
fi
echo "demo: [2/3] building $BUILD_DIR/emu/irqlab (only what the main job needs)"
BUILD_DIR="$BUILD_DIR" BUILD_TARGET=irqlab scripts/build.sh
echo "demo: [3/3] running the default scenario (set-up and build took $((SECONDS - start)) s)"
exec "$BUILD_DIR/emu/irqlab" "$@"

#!/usr/bin/env bash
# README quick start #1: set up, build, and run the main job
# (`irqlab` with its built-in default scenario). Arguments go to irqlab.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build.sh
exec build/emu/irqlab "$@"

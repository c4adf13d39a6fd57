#!/usr/bin/env bash
# Installs everything irqlab needs on Debian 12 (bookworm), idempotently.
#
# Debian 12 ships Unicorn 2.0.1, which ignores guest page tables; irqlab needs
# Unicorn >= 2.1.1, taken from Debian 13 ("trixie") as two .deb files
# (libunicorn2t64 + libunicorn-dev need only libc6 >= 2.34, so they install
# cleanly on Debian 12). A temporary source list is used for that download only;
# the system's own sources are never changed.
set -euo pipefail

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive

PKGS=(build-essential cmake ninja-build pkg-config git
      libabsl-dev libprotobuf-dev protobuf-compiler libcapstone-dev
      libgtest-dev libgmock-dev googletest libbenchmark-dev
      nasm binutils gcc-arm-none-eabi binutils-arm-none-eabi
      clang libclang-rt-14-dev)

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

unicorn_ok() {
  local v
  v=$(dpkg-query -W -f='${Version}' libunicorn-dev 2>/dev/null) || return 1
  dpkg --compare-versions "$v" ge 2.1.1
}

updated=0
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  $SUDO apt-get update -qq
  updated=1
  $SUDO apt-get install -y -qq "${missing[@]}"
fi

if ! unicorn_ok; then
  echo "setup: fetching Unicorn 2.1.1 (libunicorn2t64, libunicorn-dev) from Debian 13"
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  mkdir -p "$tmp/lists/partial" "$tmp/archives/partial"
  echo "deb http://deb.debian.org/debian trixie main" > "$tmp/trixie.list"
  APTOPT=(-o Dir::Etc::SourceList="$tmp/trixie.list" -o Dir::Etc::SourceParts=/dev/null
          -o Dir::State::Lists="$tmp/lists" -o Dir::Cache::Archives="$tmp/archives"
          -o APT::Sandbox::User=root)
  $SUDO apt-get "${APTOPT[@]}" update -qq
  (cd "$tmp" && $SUDO apt-get "${APTOPT[@]}" download libunicorn2t64 libunicorn-dev)
  [ "$updated" = 1 ] || $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq "$tmp"/libunicorn2t64_*.deb "$tmp"/libunicorn-dev_*.deb
fi
unicorn_ok || { echo "setup: Unicorn >= 2.1.1 is not installed" >&2; exit 1; }
echo "setup: all dependencies present (unicorn $(dpkg-query -W -f='${Version}' libunicorn-dev))"

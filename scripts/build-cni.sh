#!/usr/bin/env bash
# Compiles the `loom` CNI plugin (src/cni/shim/loom.c) into a static binary.
# Usage: scripts/build-cni.sh [OUTPUT]      (default: dist/cni/loom)
# Needs a C compiler and libc6-dev (scripts/lib/install.sh installs them). The output is written
# to a temporary file and renamed, so concurrent builds (test workers) never see half a binary.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$root/dist/cni/loom}
version=${LOOM_VERSION:-$(node -p 'require(process.argv[1]).version' "$root/package.json")}
cc=${CC:-cc}
command -v "$cc" >/dev/null || { echo "build-cni.sh: no C compiler ($cc); install gcc and libc6-dev" >&2; exit 2; }
mkdir -p "$(dirname "$out")"
tmp=$(mktemp "$out.XXXXXX")
trap 'rm -f "$tmp"' EXIT
"$cc" -std=c11 -O2 -Wall -Wextra -Werror -static -s -DLOOM_VERSION="\"$version\"" -o "$tmp" "$root/src/cni/shim/loom.c"
chmod 0755 "$tmp"
mv "$tmp" "$out"
trap - EXIT

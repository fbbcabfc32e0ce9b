#!/usr/bin/env bash
# Builds the Loom release tarball that ansible/ installs: compiled JS (dist/), the static CNI
# plugin binary (dist/cni/loom), the bin/ wrappers,
# proto/ (loaded at run time), package.json and the production node_modules with their native
# addons (built for this machine's Node.js ABI and libc: build on the OS the hosts run).
#
# Usage: scripts/package.sh [OUTDIR]            (default OUTDIR: release/)
#   LOOM_VERSION=1.2.3 scripts/package.sh       overrides the version from package.json
# Prints the tarball's path as its last line; writes <tarball>.sha256 next to it.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

out=${1:-release}
version=${LOOM_VERSION:-$(node -p 'require("./package.json").version')}
if ! [[ "$version" =~ ^[0-9A-Za-z][0-9A-Za-z.+_-]*$ ]]; then
  echo "package.sh: version must be letters, digits, '.', '+', '_' or '-', got \"$version\"" >&2
  exit 2
fi
if [ ! -d node_modules ]; then
  echo "package.sh: node_modules is missing; run 'npm ci' first" >&2
  exit 2
fi
name="loom-$version"

stage=$(mktemp -d /tmp/loom-package.XXXXXX)
trap 'rm -rf "$stage"' EXIT
dir="$stage/$name"
mkdir -p "$dir"

echo "package.sh: compiling TypeScript into $name/dist" >&2
npx tsc -p tsconfig.build.json --outDir "$dir/dist"
echo "package.sh: compiling the CNI plugin into $name/dist/cni/loom" >&2
LOOM_VERSION=$version bash scripts/build-cni.sh "$dir/dist/cni/loom"

cp -a bin proto package.json package-lock.json "$dir/"
echo "package.sh: copying production dependencies" >&2
cp -a node_modules "$dir/node_modules"
# Prune dev dependencies offline: the lock file says which packages production needs.
(cd "$dir" && npm prune --omit=dev --ignore-scripts --offline --no-audit --no-fund --loglevel=error >&2)
# Native addon build leftovers are not needed at run time.
find "$dir/node_modules" -type d \( -path '*/build/Release/obj*' -o -path '*/build/Release/.deps' \) -prune -exec rm -rf {} +
echo "$version" > "$dir/VERSION"

# Fail here rather than on a host: every entry point and native addon must load.
for exe in loom-controller loom-agent loomctl loom; do
  [ -x "$dir/bin/$exe" ] || { echo "package.sh: bin/$exe is missing" >&2; exit 1; }
done
(cd "$dir" && node -e 'for (const m of ["better-sqlite3", "syscall-napi", "buffer2address", "@grpc/grpc-js"]) require(m)') \
  || { echo "package.sh: a production dependency does not load from the staged node_modules" >&2; exit 1; }

mkdir -p "$out"
tarball="$(cd "$out" && pwd)/$name.tar.gz"
tar -C "$stage" --owner=0 --group=0 --numeric-owner -czf "$tarball.tmp" "$name"
mv "$tarball.tmp" "$tarball"
(cd "$(dirname "$tarball")" && sha256sum "$name.tar.gz" > "$name.tar.gz.sha256")
echo "package.sh: $(du -h "$tarball" | cut -f1) $tarball" >&2
echo "$tarball"

#!/usr/bin/env bash
# Runs every Loom test on a fresh Debian 12 machine, as root: installs what the tests need (Debian
# packages, `npm ci`), then lint, type check, unit and integration tests. CI runs exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(openvswitch-switch openvswitch-common iproute2 ethtool iputils-ping procps netcat-openbsd openssl)

step() { printf '\n==> %s\n' "$*"; }

if [ "$(id -u)" -ne 0 ]; then
  echo "error: the tests create network namespaces and run Open vSwitch: run as root" >&2
  exit 2
fi

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  step "installing Debian packages: ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

node_major=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
if [ "$node_major" -lt 20 ]; then
  echo "error: Node.js >= 20 is required (found: $(node --version 2>/dev/null || echo none))" >&2
  exit 2
fi

step "npm ci"
npm ci --no-audit --no-fund

step "lint"
npm run --silent lint

step "type check"
npm run --silent typecheck

step "tests (unit, then integration against real Open vSwitch)"
report=$(mktemp /tmp/loom-vitest.XXXXXX.json)
status=0
npx vitest run --reporter=default --reporter=json --outputFile.json="$report" || status=$?
# One plain summary line that any CI can read.
node -e '
  const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
  const skipped = r.numPendingTests + r.numTodoTests;
  console.log(`tests: ${r.numPassedTests} passed, ${r.numFailedTests} failed` + (skipped ? `, ${skipped} skipped` : ""));
' "$report" || true
rm -f "$report"
exit "$status"

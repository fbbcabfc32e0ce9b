#!/usr/bin/env bash
# Runs every Loom test on a fresh Debian 12 machine, as root: installs what the tests need (Debian
# packages, `npm ci`), then lint, type check, unit and integration tests. CI runs exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."

source scripts/lib/install.sh

step() { printf '\n==> %s\n' "$*"; }

if [ "$(id -u)" -ne 0 ]; then
  echo "error: the tests create network namespaces and run Open vSwitch: run as root" >&2
  exit 2
fi
install_debian_packages "${TEST_APT_PACKAGES[@]}"
check_node

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

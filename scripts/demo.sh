#!/usr/bin/env bash
# Loom's demo on one machine, as root on Debian 12: three simulated hosts with Open vSwitch and
# loom-agent, a controller, containers on a VXLAN and a GRE network pinging across hosts.
#   bash scripts/demo.sh        build it and leave it running (again: tears down the old one first)
#   bash scripts/demo.sh down   remove all of it
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then
  echo "error: the demo creates network namespaces and runs Open vSwitch: run as root" >&2
  exit 2
fi
if [ "${1:-up}" = "down" ]; then
  exec node --import tsx scripts/demo.ts down
fi

source scripts/lib/install.sh
install_debian_packages
check_node
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "==> npm ci"
  npm ci --no-audit --no-fund
fi
echo "==> building (npm run build)"
npm run --silent build
exec node --import tsx scripts/demo.ts up

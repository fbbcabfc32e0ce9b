#!/usr/bin/env bash
# Runs benchmarks on a Debian 12 machine, as root, after installing what they need beyond the
# tests' packages (bench:cni compares with the standard `bridge` CNI plugin).
#   bash scripts/bench.sh [NAME...]     NAME as in `npm run bench:NAME`; default: all of them
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/install.sh
if [ "$(id -u)" -ne 0 ]; then
  echo "error: the benchmarks create network namespaces and run Open vSwitch: run as root" >&2
  exit 2
fi
install_debian_packages "${BENCH_APT_PACKAGES[@]}"
check_node
[ -d node_modules ] || npm ci --no-audit --no-fund
names=("$@")
[ ${#names[@]} -gt 0 ] || names=(ovsdb openflow netlink controlplane cni dataplane)
for name in "${names[@]}"; do
  printf '\n==> bench:%s\n' "$name"
  npm run --silent "bench:$name"
done

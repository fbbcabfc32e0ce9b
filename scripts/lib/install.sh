# Shared by scripts/test.sh and scripts/demo.sh: what a fresh Debian 12 machine needs.
# gcc, g++, make, python3: npm ci builds native addons, and the CNI plugin is a small C program.
APT_PACKAGES=(openvswitch-switch openvswitch-common iproute2 ethtool iputils-ping procps netcat-openbsd openssl gcc g++ make libc6-dev python3)
# The tests also roll Loom out with Ansible over SSH to simulated hosts.
TEST_APT_PACKAGES=(ansible ansible-lint openssh-server openssh-client)
# bench:cni compares the loom plugin with the standard bridge plugin (host-local IPAM);
# bench:dataplane measures with iperf3 and profiles ovs-vswitchd with perf (BENCH_PERF=1).
BENCH_APT_PACKAGES=(containernetworking-plugins iperf3 linux-perf)

# install_debian_packages [extra packages...]: installs what is missing, nothing else.
install_debian_packages() {
  local missing=() p
  for p in "${APT_PACKAGES[@]}" "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    echo "==> installing Debian packages: ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
  fi
}

check_node() {
  local major
  major=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
  if [ "$major" -lt 20 ]; then
    echo "error: Node.js >= 20 is required (found: $(node --version 2>/dev/null || echo none))" >&2
    exit 2
  fi
}

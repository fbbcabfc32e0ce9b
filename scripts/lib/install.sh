# Shared by scripts/test.sh and scripts/demo.sh: what a fresh Debian 12 machine needs.
# gcc, g++, make, python3: npm ci builds native addons, and the CNI plugin is a small C program.
# nftables: the agent keeps the host path's NAT and published ports in table inet loom (nsenter from
# util-linux runs nft in a simulated host's namespace).
APT_PACKAGES=(openvswitch-switch openvswitch-common iproute2 ethtool iputils-ping procps netcat-openbsd openssl gcc g++ make libc6-dev python3 nftables util-linux)
# The tests also roll Loom out with Ansible over SSH to simulated hosts.
# dnsmasq-base: the "outside" upstream DNS server of test/e2e/dns.int.test.ts.
# etcd-server: the etcd store's integration tests run a real etcd (3.4) on loopback.
TEST_APT_PACKAGES=(ansible ansible-lint openssh-server openssh-client dnsmasq-base etcd-server)
# bench:cni compares the loom plugin with the standard bridge plugin (host-local IPAM).
# bench:dns compares Loom's resolver with dnsmasq under dnsperf.
# bench:dataplane and bench:egress measure with iperf3; bench:dataplane profiles ovs-vswitchd with perf (BENCH_PERF=1).
BENCH_APT_PACKAGES=(containernetworking-plugins dnsperf dnsmasq-base iperf3 linux-perf)

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

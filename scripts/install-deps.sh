#!/usr/bin/env bash
# Installs every build and test dependency of flowfold from Debian packages.
# Safe to run repeatedly; needs root (or sudo). Nothing is downloaded outside apt.
set -euo pipefail

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

BUILD_PKGS=(
  build-essential g++ cmake ninja-build pkg-config ccache
  libpcap-dev libboost-dev libfixbuf-dev libyaml-cpp-dev
  libgtest-dev libgmock-dev libbenchmark-dev libmariadb-dev libndpi-dev
)
TEST_PKGS=(
  nfdump tshark libfixbuf-tools iproute2 netcat-openbsd tcpreplay
  mariadb-server mariadb-client procps time python3
  rpm lintian dpkg-dev fakeroot systemd
  clang libclang-rt-14-dev
  pmacct python3-ipfix tcpdump libndpi-bin
)
BENCH_PKGS=(softflowd)

want=("${BUILD_PKGS[@]}" "${TEST_PKGS[@]}")
if [ "${1:-}" = "--with-bench" ]; then want+=("${BENCH_PKGS[@]}"); fi

missing=()
for p in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#want[@]} packages already installed"
  exit 0
fi

echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
# tshark asks whether non-root users may capture; answer no without a prompt.
echo "wireshark-common wireshark-common/install-setuid boolean false" | $SUDO debconf-set-selections
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# Debian starts services from packages by default; the tests start their own
# private instances, so stop the system-wide ones nobody asked for.
for svc in nfdump mariadb softflowd pmacctd nfacctd sfacctd uacctd; do
  $SUDO systemctl stop "$svc" >/dev/null 2>&1 || true
done
echo "install-deps: done"

#!/usr/bin/env bash
# Everything a fresh machine with only Node and npm needs: pnpm, the
# workspace's packages, and the Debian packages the build and tests use:
# rdma-core's headers for the native provider, tshark to check that captures
# decode as RoCEv2, Open MPI as the launcher and baseline for MPI-lite, and
# iproute2 for the tests' network namespaces, and nftables to drop packets
# on their links where the kernel has no sch_netem. Safe to run again; it
# skips what is there.
set -euo pipefail
cd "$(dirname "$0")/../.."

if ! command -v pnpm >/dev/null 2>&1 || [[ "$(pnpm -v 2>/dev/null)" != 9.* ]]; then
  npm install -g pnpm@9.15.9 >/dev/null
fi

apt_packages=()
command -v tshark >/dev/null 2>&1 || apt_packages+=(tshark)
[[ -f /usr/include/infiniband/verbs.h ]] || apt_packages+=(libibverbs-dev ibverbs-providers)
[[ -f /usr/include/rdma/rdma_cma.h ]] || apt_packages+=(librdmacm-dev)
command -v mpicc >/dev/null 2>&1 || apt_packages+=(openmpi-bin libopenmpi-dev)
command -v ip >/dev/null 2>&1 || apt_packages+=(iproute2)
command -v nft >/dev/null 2>&1 || apt_packages+=(nftables)
if ((${#apt_packages[@]})); then
  if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    apt-get install -y -qq --no-install-recommends "${apt_packages[@]}" >/dev/null
  else
    echo "setup: not root or no apt-get; the tests that need ${apt_packages[*]} will be skipped" >&2
  fi
fi

pnpm install --frozen-lockfile --reporter=silent

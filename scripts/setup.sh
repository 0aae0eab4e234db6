#!/usr/bin/env bash
# Installs what kata-factory needs to build, test and run, from Debian's
# packages only. Idempotent: installs nothing when everything is there.
set -euo pipefail

PACKAGES=(
  build-essential cmake ninja-build pkg-config git
  protobuf-compiler libprotobuf-dev libgrpc++-dev protobuf-compiler-grpc
  liburing-dev libjemalloc-dev libxxhash-dev
  # The sandbox jail's seccomp allow-list (factory/jail/).
  libseccomp-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  # The daemon's TOML config file (factory/daemon/ops/config_file.cc).
  libtomlplusplus-dev
  python3
  # scripts_shellcheck_test: every shell script passes shellcheck.
  shellcheck
  # The independent gRPC client of the daemon's tests (tests/daemon_grpc_client.py).
  python3-grpcio python3-protobuf
  # The capacity planning script's plots (scripts/capacity-plan --plots).
  python3-matplotlib
  # The nested test tier and guest images (scripts/nested-kvm).
  qemu-system-x86 busybox-static cpio lz4 kmod
  # The Linux guest image (scripts/build-guest): mkfs.ext4 -d and debugfs,
  # readelf and strip.
  e2fsprogs binutils
  # iasl: the ACPI unit test disassembles our tables with it.
  acpica-tools
  # The libFuzzer targets (scripts/fuzz, tests/fuzz): clang and its runtime
  # libraries (libFuzzer, ASan, UBSan), the versions that go with Debian's clang.
  clang libclang-rt-dev
)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if ((${#missing[@]} == 0)); then
  echo "setup: all ${#PACKAGES[@]} packages present"
  exit 0
fi

echo "setup: installing ${missing[*]}"
if [[ $(id -u) -ne 0 ]]; then
  SUDO=sudo
  command -v sudo >/dev/null || { echo "setup: not root and no sudo; install: ${missing[*]}" >&2; exit 1; }
else
  SUDO=
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "setup: done"

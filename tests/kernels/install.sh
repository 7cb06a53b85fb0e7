#!/usr/bin/env bash
# Installs what tests/kernels/run.sh needs to boot other kernels: qemu, busybox, kmod and udev
# from apt, virtme-ng (pinned, in a venv), and the Debian kernel images of each SERIES given
# (default: 6.1 and 6.12, the Debian LTS kernels: bookworm's own and its 6.12 from
# bookworm-security).
#
#   bash tests/kernels/install.sh [SERIES|PACKAGE ...]
#
# A SERIES (6.1) picks the newest linux-image-6.1.*-amd64-unsigned apt knows, so CI follows
# Debian's security updates the way fleets do; a full package name pins one. Kernels are not
# installed: each .deb is unpacked into $SYNSCOPE_KERNELS_DIR (default target/kernels) with
# `dpkg-deb -x`, which leaves /boot, the bootloader and the host's module tree alone;
# virtme-ng finds the modules beside the image (DIR/boot/vmlinuz-*, DIR/lib/modules/*).
# kmod gives the guest a modprobe for veth, sch_ingress and cls_bpf; udev creates the
# /dev/virtio-ports links virtme-ng's guest init talks to the host through.
# Idempotent: an unpacked kernel and a matching venv are kept. Needs root (apt).
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$(pwd)
dir=${SYNSCOPE_KERNELS_DIR:-$root/target/kernels}
mkdir -p "$dir"
[[ $# -gt 0 ]] || set -- 6.1 6.12

export DEBIAN_FRONTEND=noninteractive
if [[ ${SYNSCOPE_SKIP_APT_UPDATE:-0} != 1 ]]; then
  apt-get update -qq
fi
apt-get install -y -qq --no-install-recommends \
  qemu-system-x86 busybox-static kmod udev file >/dev/null

# virtme-ng in its own venv, exactly the pinned versions.
venv=$dir/venv
req=$root/tests/kernels/requirements.txt
if ! cmp -s "$req" "$venv/requirements.txt" 2>/dev/null; then
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check --no-deps -r "$req"
  cp "$req" "$venv/requirements.txt"
fi
"$venv/bin/vng" --version

for want in "$@"; do
  if [[ $want == linux-image-* ]]; then
    pkg=$want
  else
    # linux-image-6.1.0-57-amd64-unsigned, linux-image-6.12.118+deb12-amd64-unsigned; not
    # the -cloud or -rt flavours.
    re="^linux-image-${want//./\\.}\\.[0-9]+(-[0-9]+|\\+deb[0-9]+)-amd64-unsigned\$"
    pkg=$(apt-cache pkgnames linux-image- | grep -E "$re" | sort -V | tail -n 1 || true)
    if [[ -z $pkg ]]; then
      echo "FAIL: apt knows no kernel package for series $want (looked for $re)" >&2
      exit 1
    fi
  fi
  dest=$dir/$pkg
  if [[ -f $dest/.unpacked ]]; then
    echo "kernel $pkg already unpacked in $dest"
    continue
  fi
  rm -rf "$dest"
  mkdir -p "$dest/deb"
  if ! (cd "$dest/deb" && apt-get download "$pkg") >"$dir/download.log" 2>&1; then
    cat "$dir/download.log" >&2
    echo "FAIL: apt-get download $pkg" >&2
    exit 1
  fi
  deb=$(ls "$dest"/deb/*.deb)
  version=$(dpkg-deb -f "$deb" Version)
  dpkg-deb -x "$deb" "$dest"
  rm -rf "$dest/deb"
  ls "$dest"/boot/vmlinuz-* >/dev/null
  echo "$pkg $version" >"$dest/.unpacked"
  echo "kernel $pkg $version unpacked in $dest"
done

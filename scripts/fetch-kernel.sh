#!/usr/bin/env bash
# Fetch the current Debian cloud kernel (linux-image-cloud-amd64's dependency, ~27 MB)
# with `apt-get download` into a cache (not the repo) and extract its /boot
# (vmlinuz, config; the package's System.map is a placeholder) with dpkg-deb -x.
# The kernel tests look there (tests/kernels.py); KVMTRACE_KERNEL_DIR overrides it.
set -euo pipefail
dir="${KVMTRACE_KERNEL_DIR:-$HOME/.cache/kvmtrace/kernel}"
mkdir -p "$dir"
cd "$dir"
if ! command -v apt-get >/dev/null; then
    echo "fetch-kernel: no apt-get here; put a vmlinuz under $dir/x/boot or set KVMTRACE_KERNEL" >&2
    exit 0
fi
pkg=$(apt-cache depends linux-image-cloud-amd64 2>/dev/null | awk '/Depends: linux-image-/{print $2; exit}')
if [ -z "$pkg" ]; then
    apt-get update -qq >/dev/null 2>&1 || true
    pkg=$(apt-cache depends linux-image-cloud-amd64 2>/dev/null | awk '/Depends: linux-image-/{print $2; exit}')
fi
if [ -z "$pkg" ]; then
    echo "fetch-kernel: apt knows no linux-image-cloud-amd64; the kernel tests will say so" >&2
    exit 0
fi
if ! ls "$pkg"_*.deb >/dev/null 2>&1; then
    echo "== fetching $pkg"
    apt-get download -q "$pkg" 2>&1 | grep -v 'unsandboxed' || true
fi
deb=$(ls "$pkg"_*.deb 2>/dev/null | tail -n1)
if [ -n "$deb" ] && ! ls x/boot/vmlinuz-* >/dev/null 2>&1; then
    dpkg-deb -x "$deb" x
fi
ls x/boot/vmlinuz-* 2>/dev/null || echo "fetch-kernel: no kernel extracted" >&2

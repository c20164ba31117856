#!/usr/bin/env bash
# System tools kvmtrace needs: a Rust toolchain (cargo), a C compiler (benchmarks'
# baseline) and GNU binutils (`as`, `ld`: guest assembly). Installs what is missing.
set -euo pipefail
missing=()
command -v as >/dev/null || missing+=(binutils)
command -v ld >/dev/null || missing+=(binutils)
command -v cc >/dev/null || missing+=(gcc)
if [ ${#missing[@]} -gt 0 ]; then
  echo "== installing ${missing[*]} (apt-get)"
  apt-get update -qq && apt-get install -y -qq "${missing[@]}"
fi
if ! command -v cargo >/dev/null; then
  echo "cargo not found: install a Rust toolchain (https://rustup.rs or apt-get install cargo)" >&2
  exit 1
fi

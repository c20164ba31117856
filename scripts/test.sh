#!/usr/bin/env bash
# Install kvmtrace with its test extras (system tools from Debian if missing) and run
# the whole suite: Rust unit tests, then pytest. Used by the README and by .ci/run.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
python3 -m pip install -q -e '.[test]'
echo "== kernel for the boot tests"
bash scripts/fetch-kernel.sh
echo "== cargo test"
cargo test --quiet 2>&1 | tail -n 20
echo "== pytest"
set +e
python3 -m pytest -q -p no:cacheprovider "$@"
rc=$?
if [ "$rc" -eq 5 ]; then echo "pytest collected no tests: failing" >&2; exit 1; fi
[ "$rc" -eq 0 ] || exit "$rc"
echo "== benchmarks, smoke run (tiny sizes, correctness checks only; --benchmark-enable measures)"
python3 -m pytest -q -p no:cacheprovider benches
rc=$?
if [ "$rc" -eq 5 ]; then echo "pytest collected no benchmarks: failing" >&2; exit 1; fi
exit "$rc"

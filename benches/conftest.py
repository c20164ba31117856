"""Fixtures and options for the kvmtrace benchmarks (pytest-benchmark).

The benchmark files are ``bench_*.py``; this conftest collects them when
``benches`` (or a file in it) is given to pytest. pyproject's addopts carry
``--benchmark-disable``, so a plain ``pytest benches`` is a quick smoke run:
every benchmark body runs once with small sizes and its correctness checks.
``--benchmark-enable`` switches to the full sizes below and real timing.

Sizes (command-line option, else environment variable, else the default for
the mode; an explicit option/variable also applies to smoke runs):

============================  ==================================  ===============  =======
option                        environment variable                enabled          smoke
============================  ==================================  ===============  =======
``--bench-events``            ``KVMTRACE_BENCH_EVENTS``           500,000          2,000
``--bench-rounds``            ``KVMTRACE_BENCH_ROUNDS``           10               1
``--bench-hot-calls``         ``KVMTRACE_BENCH_HOT_CALLS``        100,000          200
``--bench-memory-events``     ``KVMTRACE_BENCH_MEMORY_EVENTS``    2,000,000        20,000
``--bench-stream-events``     ``KVMTRACE_BENCH_STREAM_EVENTS``    2000000,5000000  20000,50000
``--bench-sink-rows``         ``KVMTRACE_BENCH_SINK_ROWS``        engine default   10,000
``--bench-analysis-events``   ``KVMTRACE_BENCH_ANALYSIS_EVENTS``  20,000,000       100,000
``--bench-oracle-programs``   ``KVMTRACE_BENCH_ORACLE_PROGRAMS``  200              4
``--bench-oracle-steps``      ``KVMTRACE_BENCH_ORACLE_STEPS``     100,000          1,000
============================  ==================================  ===============  =======

Fixtures: ``sizes`` (the above), ``kvm_available`` (skips without a usable
/dev/kvm; fails instead under KVMTRACE_REQUIRE_KVM=1), ``c_binary`` (the C
baseline compiled from the source shipped in the package,
``kvmtrace/_bench/kvm_step.c``, with ``cc`` into a temporary directory, once per
session).
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import pytest

from kvmtrace.host import kvm_problem

from kvmtrace._bench import cbaseline

_OPTIONS = {
    # name: (env var, enabled default, smoke default, parser)
    "events": ("KVMTRACE_BENCH_EVENTS", 500_000, 2_000, int),
    "rounds": ("KVMTRACE_BENCH_ROUNDS", 10, 1, int),
    "hot_calls": ("KVMTRACE_BENCH_HOT_CALLS", 100_000, 200, int),
    "memory_events": ("KVMTRACE_BENCH_MEMORY_EVENTS", 2_000_000, 20_000, int),
    "stream_events": ("KVMTRACE_BENCH_STREAM_EVENTS", (2_000_000, 5_000_000), (20_000, 50_000),
                      lambda s: tuple(int(x) for x in str(s).replace(" ", "").split(",") if x)),
    "sink_rows": ("KVMTRACE_BENCH_SINK_ROWS", None, 10_000, lambda s: int(s) if s not in (None, "", "0") else None),
    "analysis_events": ("KVMTRACE_BENCH_ANALYSIS_EVENTS", 20_000_000, 100_000, int),
    "oracle_programs": ("KVMTRACE_BENCH_ORACLE_PROGRAMS", 200, 4, int),
    "oracle_steps": ("KVMTRACE_BENCH_ORACLE_STEPS", 100_000, 1_000, int),
}


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("kvmtrace-bench", "kvmtrace benchmark sizes")
    for name, (env, on, smoke, _) in _OPTIONS.items():
        group.addoption(
            "--bench-" + name.replace("_", "-"),
            dest="bench_" + name,
            default=None,
            help=f"(env {env}; default {on} with --benchmark-enable, {smoke} in smoke runs)",
        )


def pytest_collect_file(file_path: Path, parent: pytest.Collector):  # type: ignore[no-untyped-def]
    # bench_*.py are not matched by pytest's default python_files; collect them here
    # (files named on the command line are collected by pytest itself).
    if (file_path.suffix == ".py" and file_path.name.startswith("bench_")
            and not parent.session.isinitpath(file_path)):
        return pytest.Module.from_parent(parent, path=file_path)
    return None


@dataclasses.dataclass(frozen=True)
class Sizes:
    enabled: bool
    events: int
    rounds: int
    hot_calls: int
    memory_events: int
    stream_events: tuple[int, ...]
    sink_rows: int | None
    analysis_events: int
    oracle_programs: int
    oracle_steps: int


def benchmarks_enabled(config: pytest.Config) -> bool:
    """Mirrors pytest-benchmark: disabled by --benchmark-disable unless --benchmark-enable."""
    return not (config.getoption("benchmark_disable") and not config.getoption("benchmark_enable"))


def _size(config: pytest.Config, name: str):  # type: ignore[no-untyped-def]
    env, on, smoke, parse = _OPTIONS[name]
    raw = config.getoption("bench_" + name)
    if raw is None:
        raw = os.environ.get(env)
    return parse(raw) if raw is not None else (on if benchmarks_enabled(config) else smoke)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # pyproject's 300 s timeout fits 10 rounds; more rounds (KVMTRACE_BENCH_ROUNDS=30 for
    # a steadier median) get proportionally longer, unless a benchmark sets its own.
    scale = max(1, -(-int(_size(config, "rounds")) // 10))
    if scale > 1:
        for item in items:
            if item.get_closest_marker("timeout") is None:
                item.add_marker(pytest.mark.timeout(300 * scale))


@pytest.fixture(scope="session")
def sizes(pytestconfig: pytest.Config) -> Sizes:
    enabled = benchmarks_enabled(pytestconfig)
    values = {name: _size(pytestconfig, name) for name in _OPTIONS}
    if len(values["stream_events"]) != 2:
        raise pytest.UsageError("--bench-stream-events / KVMTRACE_BENCH_STREAM_EVENTS takes two sizes: SMALL,LARGE")
    return Sizes(enabled=enabled, **values)


@pytest.fixture(scope="session")
def kvm_available() -> None:
    reason = kvm_problem()
    if reason is not None:
        if os.environ.get("KVMTRACE_REQUIRE_KVM") == "1":
            pytest.fail(f"{reason} (KVMTRACE_REQUIRE_KVM=1)")
        pytest.skip(reason)


@pytest.fixture(scope="session")
def c_binary(kvm_available: None, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The C baseline, compiled from kvmtrace/_bench/kvm_step.c in this session."""
    try:
        return cbaseline.compile_c_baseline(tmp_path_factory.mktemp("c-baseline"))
    except cbaseline.CBaselineError as e:
        pytest.fail(str(e), pytrace=False)

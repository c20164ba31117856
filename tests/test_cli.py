"""The kvmtrace command line, end to end on bundled and built guests."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import kvmtrace
from kvmtrace.cli import run

from guests import NESTED

pytest.importorskip("pyarrow")

KVM = pytest.mark.requires_kvm  # arguments checked after the guest is loaded into a Machine
COMMANDS = ("demo", "trace", "boot", "show", "analyze", "export", "conformance", "diff", "fuzz", "bench")



def cli(capsys, *args: str) -> tuple[int, str, str]:  # type: ignore[no-untyped-def]
    code = run([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def one_error_line(err: str) -> str:
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("error: "), err
    return lines[0]


@pytest.fixture(scope="module")
def elf_guest(tmp_path_factory) -> Path:  # type: ignore[no-untyped-def]
    """A static ELF with symbols, linked by GNU ld (the way kvmtrace.assemble builds guests)."""
    d = tmp_path_factory.mktemp("elf")
    (d / "g.s").write_text(".code64\n" + NESTED)
    subprocess.run(["as", "--64", "-o", str(d / "g.o"), str(d / "g.s")], check=True)
    subprocess.run(["ld", "-m", "elf_x86_64", "-N", "-static", "-Ttext=0x8000", "-e", "_start",
                    "-o", str(d / "g.elf"), str(d / "g.o")], check=True, capture_output=True)
    return d / "g.elf"


def test_help_everywhere(capsys):  # type: ignore[no-untyped-def]
    code, out, _ = cli(capsys, "--help")
    assert code == 0
    for c in COMMANDS:
        assert c in out
    for c in COMMANDS:
        code, out, err = cli(capsys, c, "--help")
        assert code == 0, (c, err)
        assert "Usage" in out and f"kvmtrace {c}" in out
    code, out, _ = cli(capsys, "trace", "-h")
    assert code == 0 and "--break" in out and "--stop-at" in out and "--registers" in out


def test_entry_point_subprocess(tmp_path):  # type: ignore[no-untyped-def]
    # The console script installed with this interpreter, not whichever `kvmtrace` PATH finds first
    # (that may belong to another install of kvmtrace).
    exe = Path(sys.executable).with_name("kvmtrace")
    cmd = [str(exe)] if exe.is_file() else [sys.executable, "-m", "kvmtrace.cli"]
    r = subprocess.run([*cmd, "show", str(tmp_path / "nope.parquet")], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2
    assert r.stderr.strip() == f"error: {tmp_path / 'nope.parquet'}: no such file or directory"
    r = subprocess.run([*cmd, "--help"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and "trace" in r.stdout


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("trace",), "Missing argument 'guest'"),
        (("trace", "no-such-guest.elf"), "guest file 'no-such-guest.elf' not found"),
        pytest.param(("trace", "demo", "--break", "nosuch"), "unknown symbol 'nosuch'", marks=KVM),
        pytest.param(("trace", "demo", "--break", "0x8000:jump"), "kind 'jump' is not one of exec, write, io, rw", marks=KVM),
        pytest.param(("trace", "demo", "--break", "0x8000:write:3"), "length 3 is not 1, 2, 4 or 8", marks=KVM),
        pytest.param(("trace", "demo", "--break", "0x8001:write:8"), "not aligned", marks=KVM),
        pytest.param(("trace", "demo", "--break", "1", "--break", "2", "--break", "3", "--break", "4", "--break",
                      "5"), "hw_breakpoints", marks=KVM),
        pytest.param(("trace", "demo", "--stop-at", "0xzz"), "'0xzz' is not a number", marks=KVM),
        (("trace", "demo", "--mode", "v86"), "--mode 'v86': use real, protected or long"),
        (("trace", "demo", "--max-events", "many"), "Invalid value for '--max-events'"),
        pytest.param(("trace", "demo", "--registers", "cr0"), '"cr0" is not a general-purpose register', marks=KVM),
        (("trace", "demo", "--asm", "--elf"), "pass at most one of --asm, --elf and --raw"),
        (("trace", "demo", "--asm"), "guest file 'demo' not found"),
        (("trace", "demo", "--bogus"), "No such option: --bogus"),
        (("show", "missing.parquet"), "missing.parquet: no such file or directory"),
        (("analyze", "missing.parquet"), "no such file or directory"),
        (("export", "missing.parquet", "--perfetto", "x.json"), "no such file or directory"),
        (("conformance", "--mode", "v86"), "--mode 'v86'"),
    ],
)
def test_usage_errors_exit_2_with_one_line(capsys, args, needle):  # type: ignore[no-untyped-def]
    code, out, err = cli(capsys, *args)
    assert code == 2, (out, err)
    line = one_error_line(err)
    assert needle in line, line


def test_bad_trace_files_exit_2(capsys, tmp_path):  # type: ignore[no-untyped-def]
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    code, _, err = cli(capsys, "show", text)
    assert code == 2 and "not a readable Parquet file" in one_error_line(err)
    empty = tmp_path / "empty"
    empty.mkdir()
    code, _, err = cli(capsys, "analyze", empty)
    assert code == 2 and "holds no trace" in one_error_line(err)
    g = tmp_path / "guest.xyz"
    g.write_bytes(b"\x90")
    code, _, err = cli(capsys, "trace", g)
    assert code == 2 and "pass --elf, --asm" in one_error_line(err)
    code, _, err = cli(capsys, "trace", g, "--asm", "--raw")
    assert code == 2 and "at most one of --asm, --elf and --raw" in one_error_line(err)


@pytest.mark.requires_kvm
def test_trace_bundled_demo_summary(capsys):  # type: ignore[no-untyped-def]
    code, out, err = cli(capsys, "trace", "demo", "--registers", "rip,rsp", "--top", "5")
    assert code == 0, err
    assert "exit_port (exit code 144)" in out
    assert "hottest pcs" in out and "fib" in out and "cmp rdi, 2" in out
    assert "DR6 values" in out and "0xffff4ff0" in out
    assert "registers    rip, rsp" in out
    assert "hello from the kvmtrace demo guest" in out
    try:
        import kvmtrace.analysis  # noqa: F401
    except ImportError:
        assert "not available" in out
    else:
        assert "dr6_fixed_bits" in out


@pytest.mark.requires_kvm
def test_trace_out_show_analyze_export(capsys, tmp_path):  # type: ignore[no-untyped-def]
    out_dir = tmp_path / "run.parquet"
    code, out, err = cli(capsys, "trace", "demo", "-s", "-r", "rip,rsp,rax", "-o", out_dir, "--part-rows", "1000",
                         "--no-analysis")
    assert code == 0, err
    assert f"trace written to {out_dir} (5 part(s), 4,427 rows)" in out.replace("\n", " ")
    t = kvmtrace.read_trace(out_dir)
    assert len(t) == 4427 and t.stop_reason == "exit_port" and t.register_names == ["rip", "rsp", "rax"]

    code, out, err = cli(capsys, "trace", "demo", "-o", out_dir)
    assert code == 2 and "pass --force" in one_error_line(err)
    code, out, err = cli(capsys, "trace", "demo", "-o", out_dir, "--force", "--max-events", "100", "--no-analysis")
    assert code == 0, err
    assert len(kvmtrace.read_trace(out_dir)) == 100
    code, out, err = cli(capsys, "trace", "demo", "-o", out_dir, "--force", "-r", "rip,rsp,rax", "--no-analysis")
    assert code == 0, err

    code, out, err = cli(capsys, "show", out_dir, "--rows", "4", "--disasm")
    assert code == 0, err
    assert "exit_port" in out and "first 4 of 4,427 events" in out and "_start" in out and "puts" in out
    assert "mov al, [rsi]" in out  # the first instruction of puts
    assert "1 part(s), complete" in out

    code, out, err = cli(capsys, "analyze", out_dir, "--json")
    report = json.loads(out)
    assert report["events"] == 4427
    assert code == (0 if report["ok"] else 1)
    code, out, _ = cli(capsys, "analyze", out_dir)
    assert code == (0 if report["ok"] else 1) and "dr6_fixed_bits" in out

    pf = tmp_path / "demo.json"
    single = tmp_path / "single.parquet"
    code, out, err = cli(capsys, "export", out_dir, "--perfetto", pf, "--parquet", single)
    assert code == 0, err
    assert "function slices" in out and "ui.perfetto.dev" in out
    doc = json.loads(pf.read_text())
    names = [e["name"] for e in doc["traceEvents"] if e["ph"] == "X"]
    assert names.count("fib") == 465 and names.count("puts") == 2 and names.count("checksum") == 1
    assert np.array_equal(kvmtrace.read_trace(single).pc, t.pc)


@pytest.mark.requires_kvm
def test_trace_elf_with_breakpoints_and_export(capsys, elf_guest, tmp_path):  # type: ignore[no-untyped-def]
    out_dir = tmp_path / "elf.parquet"
    code, out, err = cli(capsys, "trace", elf_guest, "--break", "g", "--break", "f:exec:1", "-o", out_dir,
                         "--no-analysis")
    assert code == 0, err
    assert "hw exec@0x" in out and "exit_port" in out
    t = kvmtrace.read_trace(out_dir)
    assert len(t) == 2 and t.debug.single_step is False
    pf = tmp_path / "bp.json"
    code, out, err = cli(capsys, "export", out_dir, "--perfetto", pf, "--elf", elf_guest)
    assert code == 0, err
    inst = [e for e in json.loads(pf.read_text())["traceEvents"] if e["ph"] == "i"]
    assert sorted(e["args"]["symbol"] for e in inst) == ["f", "g"]

    # Single-step, stored without re-giving the ELF: the stored symbols name the slices.
    ss = tmp_path / "ss.parquet"
    code, out, err = cli(capsys, "trace", elf_guest, "--elf", "-o", ss, "--no-analysis", "--stop-at", "g")
    assert code == 0, err
    assert "stop_at" in out
    code, out, err = cli(capsys, "export", ss, "--perfetto", tmp_path / "ss.json")
    assert code == 0, err
    sl = {e["name"]: e for e in json.loads((tmp_path / "ss.json").read_text())["traceEvents"] if e["ph"] == "X"}
    assert set(sl) == {"_start", "main", "f", "g"}


@pytest.mark.requires_kvm
def test_trace_asm_and_raw_files(capsys, tmp_path):  # type: ignore[no-untyped-def]
    src = tmp_path / "g.s"
    src.write_text(NESTED)
    code, out, err = cli(capsys, "trace", src, "--no-analysis", "--stop-at", "f")
    assert code == 0, err
    assert "stop_at" in out and "g.s (asm, long mode)" in out
    raw = tmp_path / "code.bin"
    raw.write_bytes(bytes.fromhex("b0 2a e6 f4 f4".replace(" ", "")))  # mov al, 42; out 0xf4, al; hlt
    code, out, err = cli(capsys, "trace", raw, "--mode", "real", "--no-analysis")
    assert code == 0, err
    assert "exit code 42" in out and "real mode" in out
    code, out, err = cli(capsys, "trace", raw, "--raw", "--load-addr", "0x9000", "--mode", "protected",
                         "--max-events", "1", "--no-analysis")
    assert code == 0, err
    assert "max_events" in out and "0x9002" in out


@pytest.mark.requires_kvm
def test_unwritable_out_is_a_usage_error(capsys, tmp_path):  # type: ignore[no-untyped-def]
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    code, out, err = cli(capsys, "trace", "demo", "--out", blocker / "sub")
    assert code == 2 and "--out: cannot create the trace directory" in one_error_line(err)


@pytest.mark.requires_kvm
def test_trace_guest_fault_exits_1(capsys, tmp_path):  # type: ignore[no-untyped-def]
    src = tmp_path / "fault.s"
    src.write_text("_start:\n    ud2\n")  # #UD with no IDT handler: triple fault
    code, out, err = cli(capsys, "trace", src, "--no-analysis")
    assert code == 1
    assert "error:" in err and "shut down" in err


@pytest.mark.requires_kvm
def test_demo_writes_a_file_read_trace_reads(capsys, tmp_path):  # type: ignore[no-untyped-def]
    f = tmp_path / "demo.parquet"
    code, out, err = cli(capsys, "demo", "--out", f, "--events", "2")
    assert code == 0, err
    assert f"trace written to {f}" in out.replace("\n", "")
    t = kvmtrace.read_trace(f)
    assert len(t) == 4427 and t.exit_code == 144 and t.metadata["host_caps"]["api_version"] == 12
    code, out, err = cli(capsys, "show", f, "--rows", "0")
    assert code == 0 and "exit_port" in out


@pytest.mark.requires_kvm
def test_conformance_writes_json_and_markdown(capsys, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    js, md = tmp_path / "r.json", tmp_path / "r.md"
    code, out, _ = cli(capsys, "conformance", "--scenario", "step_hlt", "--scenario", "inject_db",
                       "--json", js, "--markdown", md)
    assert code == 0, out  # both pass on this host; see README "Host findings"
    report = json.loads(js.read_text())
    assert {(r["scenario"], r["mode"]) for r in report["results"]} == {
        (s, m) for s in ("step_hlt", "inject_db") for m in ("real", "protected", "long")
    }
    text = md.read_text()
    assert text.startswith("| scenario | real | protected | long |") and "step_hlt" in text


WINDOWED = """
_start:  mov $6, %ecx
again:   call f
after:   dec %ecx
         jnz again
         ud2
f:       inc %eax
         inc %ebx
         ret
"""


@pytest.mark.requires_kvm
def test_trace_window_and_ring(capsys, tmp_path):  # type: ignore[no-untyped-def]
    src = tmp_path / "w.s"
    src.write_text(WINDOWED)
    out = tmp_path / "w.parquet"
    # Windows of 2 steps from each call of f; the guest ends in a triple fault.
    code, _, err = cli(capsys, "trace", src, "--window", "f:2", "--out", out, "--no-analysis")
    assert code == 1 and "shut down" in err
    t = kvmtrace.read_trace(out)
    assert t.windows == 6 and t.window.tolist() == [k for k in range(6) for _ in range(3)]
    # The ring keeps the last 4 steps and, on the fault, writes them to --out.
    ring = tmp_path / "ring.parquet"
    code, stdout, err = cli(capsys, "trace", src, "--single-step", "--ring", "4", "--out", ring, "--no-analysis")
    assert code == 1 and "before them dropped" in stdout.replace("\n", " ")
    back = kvmtrace.read_trace(ring)
    assert len(back) == 4 and back.stop_reason == "shutdown" and back.dropped_events == back.event_count - 4
    for bad, msg in ((("--window", "f:until"), "until= needs a value"), (("--window", "f:often=2"), "unknown part"),
                     (("--window", "f:0"), "must be at least 1")):
        code, _, err = cli(capsys, "trace", src, *bad)
        assert code == 2 and msg in one_error_line(err), err

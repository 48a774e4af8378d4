"""profile-gpu end to end on CPU, and every bad input: one line on stderr, exit 2, nothing lost."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")
from typer.testing import CliRunner

from estimator.calibration import load_calibration
from profiler.cli import app

FIXTURE = Path(__file__).parent / "data" / "profiler" / "cpu-quick"
runner = CliRunner()


def _cli(*args: str):
    return runner.invoke(app, list(args))


def _bad(result, text: str) -> None:
    assert result.exit_code == 2, result.output
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("profile-gpu: error: ") and text in lines[0]
    assert "Traceback" not in result.output


def test_quick_sweep_then_fit_end_to_end(tmp_path):
    out = tmp_path / "run"
    base = [sys.executable, "-m", "profiler.cli"]
    r = subprocess.run(base + ["sweep", "--quick", "--device", "cpu", "--out", str(out), "--no-progress",
                               "--country", "FRA"], capture_output=True, text=True, check=False)
    assert r.returncode == 0, r.stderr
    r = subprocess.run(base + ["fit", str(out), "--out", str(tmp_path / "cal.json")], capture_output=True, text=True,
                       check=False)
    assert r.returncode == 0, r.stderr
    cal = load_calibration(tmp_path / "cal.json")
    assert cal.device_type == "cpu" and "fp32" in cal.kernel_model and cal.power is None
    run = json.loads((out / "run.json").read_text())
    emissions = run["sessions"][-1]["emissions"]
    assert emissions["country_iso_code"] == "FRA"
    assert emissions.get("emissions_kgco2e") is not None or emissions.get("why")  # recorded, or why not


def test_device_cuda_without_gpu(tmp_path):
    _bad(_cli("sweep", "--quick", "--device", "cuda", "--out", str(tmp_path)),
         "no CUDA GPU visible: torch.cuda.is_available() is False; use --device cpu")


def test_unknown_shape_parameter_and_dtype(tmp_path):
    _bad(_cli("sweep", "--device", "cpu", "--kind", "block", "--shape", "d_model=128,sequence=64", "--out",
              str(tmp_path)), "unknown shape parameter 'sequence'")
    _bad(_cli("sweep", "--device", "cpu", "--shape", "d_model=100,seq=64,heads=3", "--out", str(tmp_path)),
         "not divisible")
    _bad(_cli("sweep", "--quick", "--device", "cpu", "--dtype", "bf61", "--out", str(tmp_path)), "bf16")
    _bad(_cli("sweep", "--quick", "--device", "cpu", "--country", "France", "--out", str(tmp_path)), "alpha-3")


def test_shape_that_cannot_fit(tmp_path):
    _bad(_cli("sweep", "--device", "cpu", "--kind", "block", "--shape", "d_model=65536,seq=131072,batch=64",
              "--out", str(tmp_path)), "more than this device's")


def test_custom_shape_runs(tmp_path):
    r = _cli("sweep", "--device", "cpu", "--kind", "gemm", "--shape", "m=32,n=32,k=32", "--mode", "fwd",
             "--out", str(tmp_path), "--no-codecarbon", "--no-progress")
    assert r.exit_code == 0, r.output
    rec = json.loads((tmp_path / "measurements.jsonl").read_text())
    assert rec["shape_id"] == "gemm|fwd|fp32|k=32,m=32,n=32" and rec["status"] == "ok"


def test_unwritable_out(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    _bad(_cli("sweep", "--quick", "--device", "cpu", "--out", str(blocker / "run")), "cannot write to --out")
    _bad(_cli("fit", str(FIXTURE), "--out", str(blocker / "cal.json")), "cannot write")


def test_corrupt_or_foreign_inputs_to_fit(tmp_path):
    corrupt = tmp_path / "measurements.jsonl"
    corrupt.write_text('{"schema": "llm-cost-profile-measurement"\ngarbage\n')
    _bad(_cli("fit", str(corrupt)), "not valid JSON")
    cal = tmp_path / "cal" / "calibration.json"
    cal.parent.mkdir()
    cal.write_text(json.dumps({"schema": "llm-cost-calibration", "schema_version": 1}) + "\n")
    _bad(_cli("fit", str(cal)), "not a profiler measurement")
    _bad(_cli("fit", str(tmp_path / "missing")), "no measurements at")


def test_existing_run_is_never_lost(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    src = (FIXTURE / "measurements.jsonl").read_bytes()
    (run / "measurements.jsonl").write_bytes(src)
    _bad(_cli("sweep", "--quick", "--device", "cpu", "--out", str(run), "--no-codecarbon"), "--resume")
    _bad(_cli("sweep", "--quick", "--device", "cuda", "--out", str(run), "--resume"), "no CUDA GPU")
    assert hashlib.sha256((run / "measurements.jsonl").read_bytes()).digest() == hashlib.sha256(src).digest()


def test_fit_command_writes_a_loadable_calibration(tmp_path):
    r = _cli("fit", str(FIXTURE), "--out", str(tmp_path / "c.json"))
    assert r.exit_code == 0, r.output
    assert load_calibration(tmp_path / "c.json").device_type == "cpu"


def test_torch_missing_is_one_clear_line(tmp_path):
    code = ("import sys; sys.modules['torch'] = None; sys.argv = ['profile-gpu', 'sweep', '--quick', '--device', "
            f"'cpu', '--out', {str(tmp_path)!r}]; from profiler.cli import main; main()")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert r.returncode == 2
    assert r.stderr.strip() == "profile-gpu: error: torch is not installed; pip install -e .[profiler]"


def test_info_says_why_energy_is_unavailable():
    r = _cli("info")
    assert r.exit_code == 0
    assert "torch:" in r.output and "energy: unavailable (" in r.output


def test_collectives_bad_op(tmp_path):
    _bad(_cli("collectives", "--device", "cpu", "--out", str(tmp_path), "--ops", "all_reduse"), "all_reduce")


def test_resume_with_corrupt_run_file(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "measurements.jsonl").write_bytes((FIXTURE / "measurements.jsonl").read_bytes())
    (run / "run.json").write_text("{ not json")
    _bad(_cli("sweep", "--quick", "--device", "cpu", "--out", str(run), "--resume", "--no-codecarbon"), "corrupt")
    assert (run / "run.json").read_text() == "{ not json"


def test_console_entry_point_exit_codes_and_fit_default_run(tmp_path):
    """The installed entry point (profiler.cli.main) exits 2 with one line on bad input, and a bare
    `profile-gpu fit` fits the newest run under ./runs, as the README's three commands show."""
    import shutil

    base = [sys.executable, "-c", "import sys; from profiler.cli import main; main(sys.argv[1:])"]
    for args, text in ((["fit", str(tmp_path / "missing")], "no measurements"),
                       (["fit", "--bogus"], "No such option")):
        r = subprocess.run(base + args, capture_output=True, text=True, check=False, cwd=tmp_path)
        lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
        assert r.returncode == 2 and len(lines) == 1 and text in lines[0], r.stderr
    r = subprocess.run(base + ["fit"], capture_output=True, text=True, check=False, cwd=tmp_path)
    assert r.returncode == 2 and "none under ./runs" in r.stderr
    shutil.copytree(FIXTURE, tmp_path / "runs" / "20260101-000000-cpu")
    r = subprocess.run(base + ["fit"], capture_output=True, text=True, check=False, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert load_calibration(tmp_path / "runs" / "20260101-000000-cpu" / "calibration.json").device_type == "cpu"

"""A hostile corpus: every number a user can type, every file a user can pass, the Python API and the profiler, fed
what a careless or adversarial user would feed them (issue #15, "Bad input and faults").

Each case holds the project's promise for bad input: exit code 2 and exactly one stderr line
``error: <what>; <fix>`` (``profile-gpu: error: ...`` for the profiler), no traceback, and never a hang; or it works
(exit 0) and then ``--json`` is strict JSON (no NaN/Infinity). The API raises ``EstimatorInputError`` (or TypeError for
a wrong type) with the message the CLI prints. Cases run in-process (``main([...])``) to stay fast; a few run the
console entry points as subprocesses.
"""

from __future__ import annotations

import contextlib
import copy
import errno
import json
import math
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from estimator import EstimatorInputError, estimate_inference, estimate_training, plan
from estimator.cli import BY_FLAG, COUNT, NUMBER, OPTIONS, PLAN, SERVE, TRAIN, main

ROOT = Path(__file__).parents[1]
HF = ROOT / "tests" / "data" / "hf_configs"
PROFILE_FIXTURE = ROOT / "tests" / "data" / "profiler" / "cpu-quick"
HUGE = "1" + "0" * 5000  # a 5,000-digit integer
CASE_LIMIT_S = 10  # no single case may take longer (a hang is a failure, not a slow pass)

# --------------------------------------------------------------------------- helpers


@contextlib.contextmanager
def _deadline(seconds: int = CASE_LIMIT_S):
    def _raise(signum, frame):
        raise TimeoutError(f"no answer within {seconds} s")

    old = signal.signal(signal.SIGALRM, _raise)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def _strict_json(text: str) -> dict:
    def no_constant(name):
        raise AssertionError(f"non-finite number {name} in --json output")

    return json.loads(text, parse_constant=no_constant)


def cli(capsys, args: list[str], entry=main) -> tuple[int, str, str]:
    """Run a CLI in-process; (exit code, stdout, stderr)."""
    capsys.readouterr()
    with _deadline():
        try:
            entry(list(args))
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    out, err = capsys.readouterr()
    return code, out, err


def one_line_error(code: int, err: str, prefix: str = "error: ") -> str:
    """Assert the bad-input contract; returns the message after the prefix."""
    assert "Traceback" not in err, err[-2000:]
    assert code == 2, (code, err[-1000:])
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1, lines
    assert lines[0].startswith(prefix), lines[0]
    body = lines[0][len(prefix):]
    what, sep, fix = body.partition("; ")
    assert sep and what.strip() and fix.strip(), f"not '<what>; <fix>': {body!r}"
    assert len(body) < 600, f"message of {len(body)} characters"
    return body


def ok_or_one_line_error(code: int, out: str, err: str, as_json: bool = True) -> str | None:
    """Either it worked (strict JSON when asked for) or it is a one-line error; returns the message or None."""
    assert "Traceback" not in err and "internal error" not in err, err[-2000:]
    if code == 0:
        if as_json:
            _strict_json(out)
        assert "error:" not in err
        return None
    return one_line_error(code, err)


# --------------------------------------------------------------------------- every numeric option x hostile values

BASE = {TRAIN: ["train", "--params", "7e9", "--tokens", "1e11", "--gpus", "64", "--json"],
        SERVE: ["serve", "--params", "7e9", "--json"],
        PLAN: ["plan", "--budget-flops", "1e22", "--gpus", "64", "--no-compare", "--json"]}
VALUES = ["text", "", "1e5", "2.5", "0", "-1", "nan", "inf", "1e400", "1e15", "1e18", HUGE]
NEVER_NUMBERS = {"text", "", "nan", "inf", "1e400", HUGE}  # must always be refused, naming the flag


def _numeric(o) -> bool:
    return o.type in (NUMBER, COUNT) or type(o.type).__name__ == "IntRange"


def _argv(mode: str, flag: str, value: str) -> list[str]:
    base = list(BASE[mode])
    if flag in base:  # the option under test replaces the base's value
        i = base.index(flag)
        del base[i:i + 2]
    if mode == PLAN and flag.startswith("--budget-") and "--budget-flops" in base:
        i = base.index("--budget-flops")
        del base[i:i + 2]
    if flag == "--active-params":
        base[base.index("--params") + 1] = "47e9"
    return [*base, flag, value]


NUMERIC_CASES = [(m, o.flag, v) for m in (TRAIN, SERVE, PLAN) for o in OPTIONS if m in o.modes and _numeric(o)
                 for v in VALUES]


@pytest.mark.parametrize("mode,flag,value", NUMERIC_CASES,
                         ids=[f"{m}{f}={v[:8] or 'empty'}" for m, f, v in NUMERIC_CASES])
def test_every_numeric_option_with_hostile_values(capsys, mode, flag, value):
    code, out, err = cli(capsys, _argv(mode, flag, value))
    msg = ok_or_one_line_error(code, out, err)
    whole = BY_FLAG[flag].type is not NUMBER
    if value in NEVER_NUMBERS or (whole and value == "2.5"):
        assert msg is not None, f"{flag} {value[:20]!r} was accepted"
        assert flag in msg, msg
        assert HUGE[:100] not in msg  # the value is shown shortened, not 5,000 digits


# --------------------------------------------------------------------------- named CLI cases

NAMED = [  # (id, argv, expected exit code, text the message must hold, text it must not hold)
    ("tp-fraction", ["train", "--params", "7e9", "--tp", "2.5"], 2, "--tp", None),
    ("tp-zero", ["train", "--params", "7e9", "--tp", "0"], 2, "--tp", None),
    ("pp-zero", ["train", "--params", "7e9", "--pp", "0"], 2, "--pp", None),
    ("cp-zero", ["train", "--params", "7e9", "--cp", "0"], 2, "--cp", None),
    ("ept-zero-active", ["train", "--params", "47e9", "--active-params", "13e9", "--experts-per-token", "0"], 2,
     "--experts-per-token", None),
    ("experts-with-active", ["train", "--params", "47e9", "--active-params", "13e9", "--experts", "64"], 2,
     "--experts", None),
    ("serve-experts-with-active", ["serve", "--params", "47e9", "--active-params", "13e9", "--experts", "64"], 2,
     "--experts", None),
    ("active-above-total", ["train", "--params", "7e9", "--active-params", "13e9"], 2, "--active-params", None),
    ("empty-gpu", ["train", "--params", "7e9", "--gpu", ""], 2, "--gpu", None),
    ("blank-gpu", ["train", "--params", "7e9", "--gpu", "  "], 2, "--gpu", None),
    ("empty-region", ["train", "--params", "7e9", "--region", ""], 2, "--region", None),
    ("unknown-gpu", ["train", "--params", "7e9", "--gpu", "h200000"], 2, "h200000", None),
    ("unknown-region", ["train", "--params", "7e9", "--region", "XX-NOWHERE"], 2, "XX-NOWHERE", None),
    ("gpus-1e15", ["train", "--params", "7e9", "--gpus", "1e15"], 2, "--gpus", None),
    ("gpus-1e18", ["train", "--params", "7e9", "--gpus", "1e18"], 2, "--gpus", None),
    ("flat-gpus-1e18", ["--params", "7e9", "--gpus", "1e18"], 2, "--gpus", None),
    ("plan-gpus-1e18", ["plan", "--budget-usd", "1e8", "--gpus", "1e18"], 2, "--gpus", None),
    ("budget-flops-1", ["plan", "--budget-flops", "1"], 2, "--budget-flops", "--params"),
    ("flat-budget-flops-1", ["--budget-flops", "1"], 2, "--budget-flops", "--params"),
    ("budget-usd-1", ["plan", "--budget-usd", "1", "--json"], 0, None, None),  # $1 buys a 33M model: it works
    ("budget-days-tiny", ["plan", "--budget-days", "1e-9", "--gpus", "8"], 2, "--budget-days", "--params"),
    ("two-budgets", ["plan", "--budget-usd", "1e8", "--budget-mwh", "1e3"], 2, "--budget-usd", None),
    ("budget-days-no-gpus", ["plan", "--budget-days", "30"], 2, "--gpus", None),
    ("zero-4", ["train", "--params", "7e9", "--zero", "4"], 2, "--zero", None),
    ("zero-fraction", ["train", "--params", "7e9", "--zero", "1.5"], 2, "--zero", None),
    ("precision-fp4", ["train", "--params", "7e9", "--precision", "fp4"], 2, "--precision", None),
    ("recompute-bogus", ["train", "--params", "7e9", "--recompute", "sometimes"], 2, "--recompute", None),
    ("scaling-law-bogus", ["plan", "--budget-usd", "1e8", "--scaling-law", "moore"], 2, "moore", None),
    ("scaling-law-empty", ["plan", "--budget-usd", "1e8", "--scaling-law", ""], 2, "--scaling-law", None),
    ("no-model", ["train", "--tokens", "1e12"], 2, "--params", None),
    ("no-args", [], 2, "--params", None),
    ("params-tiny", ["train", "--params", "10"], 2, "--params", None),
    ("unknown-option", ["train", "--params", "7e9", "--bogus", "1"], 2, "--bogus", None),
    ("missing-value", ["train", "--params"], 2, "--params", None),
    ("batch-in-training", ["train", "--params", "7e9", "--batch", "8"], 2, "--batch", None),
    ("tp-in-serving", ["serve", "--params", "7e9", "--tp", "8"], 2, "--tp", None),
    ("inference-with-budget", ["--inference", "--budget-usd", "1e6"], 2, "--inference", None),
    ("preset-and-params", ["train", "--preset", "llama3-8b", "--params", "7e9"], 2, "--params", None),
    ("preset-and-hf", ["train", "--preset", "llama3-8b", "--hf-config", str(HF / "gpt2.json")], 2, "--preset", None),
    ("preset-unknown", ["train", "--preset", "llama99"], 2, "llama99", None),
    ("preset-empty", ["train", "--preset", ""], 2, "preset", None),
    ("preset-markup", ["train", "--preset", "my[bold]model"], 2, "my[bold]model", None),
    ("preset-markup-link", ["train", "--preset", "[link=http://x]y[/link]"], 2, "[link=http://x]y[/link]", None),
    ("hf-missing", ["train", "--hf-config", "/nonexistent/[bold]x/config.json"], 2, "[bold]x", None),
    ("calibration-missing", ["train", "--params", "7e9", "--calibration", "/nonexistent/[red]c.json"], 2,
     "[red]c.json", None),
    ("prompt-too-long", ["serve", "--params", "7e9", "--prompt-tokens", "1e7", "--output-tokens", "1e7"], 2,
     "tokens", None),
    ("reasoning-negative", ["serve", "--params", "7e9", "--reasoning-tokens", "-1"], 2, "--reasoning-tokens", None),
    ("queries-1e18", ["serve", "--params", "7e9", "--queries-per-day", "1e18"], 2, "--queries-per-day", None),
    ("peak-below-1", ["serve", "--params", "7e9", "--queries-per-day", "1e6", "--peak-to-average", "0.5"], 2,
     "--peak-to-average", None),
    ("pue-below-1", ["train", "--params", "7e9", "--pue", "0.9"], 2, "--pue", None),
    ("mfu-above-1", ["train", "--params", "7e9", "--mfu", "1.5"], 2, "--mfu", None),
    ("layers-fraction", ["train", "--params", "7e9", "--layers", "31.5"], 2, "--layers", None),
    ("seq-len-text", ["train", "--params", "7e9", "--seq-len", "long"], 2, "--seq-len", None),
    ("seq-len-1e5", ["train", "--params", "7e9", "--seq-len", "1e5", "--json"], 0, None, None),
    ("serve-seq-len-fraction", ["serve", "--params", "7e9", "--seq-len", "4096.5"], 2, "--seq-len", None),
    ("serve-experts-text", ["serve", "--params", "47e9", "--experts", "eight"], 2, "--experts", None),
    ("serve-experts-1e5", ["serve", "--params", "47e9", "--experts", "1e5", "--json"], None, None, None),
    ("works-flat", ["--params", "7e9", "--tokens", "1e11", "--json"], 0, None, None),
    ("works-serve", ["--inference", "--preset", "llama3-8b", "--json"], 0, None, None),
    ("works-plan", ["--budget-usd", "1e7", "--json"], 0, None, None),
    ("version", ["--version"], 0, None, None),
]
_NO_TOKENS = ("no-model", "missing-value")  # training needs a token count: give it, so a case tests what it names
NAMED = [(i, [*a, "--tokens", "1e11"] if a[:1] == ["train"] and "--tokens" not in a and i not in _NO_TOKENS else a,
          *rest) for i, a, *rest in NAMED]


@pytest.mark.parametrize("argv,code,needle,absent", [c[1:] for c in NAMED], ids=[c[0] for c in NAMED])
def test_named_cli_cases(capsys, argv, code, needle, absent):
    got, out, err = cli(capsys, argv)
    msg = ok_or_one_line_error(got, out, err, as_json="--json" in argv)
    if code is not None:
        assert got == code, (got, err)
    if needle is not None:
        assert msg is not None and needle in msg, msg
    if absent is not None:
        assert msg is not None and absent not in msg, msg


LONG = "x" * 5000
TEXT_CASES = [(m, f, v) for m, f in ((TRAIN, "--gpu"), (TRAIN, "--region"), (TRAIN, "--preset"), (TRAIN, "--hf-config"),
                                     (TRAIN, "--calibration"), (TRAIN, "--precision"), (TRAIN, "--recompute"),
                                     (SERVE, "--gpu"), (SERVE, "--preset"), (SERVE, "--weight-precision"),
                                     (SERVE, "--kv-precision"), (PLAN, "--scaling-law"), (PLAN, "--region"))
              for v in (LONG, "\x00", "-", "[bold]x[/bold]", " ")]


@pytest.mark.parametrize("mode,flag,value", TEXT_CASES,
                         ids=[f"{m}{f}={v[:6].encode().hex() if not v.isalnum() else v[:6]}" for m, f, v in TEXT_CASES])
def test_every_text_option_with_hostile_text(capsys, mode, flag, value):
    """A 5,000-character, NUL, dash, markup or blank value: refused with one short line that names it."""
    argv = _argv(mode, flag, value)
    if flag in ("--preset", "--hf-config"):
        i = argv.index("--params")
        del argv[i:i + 2]
    code, out, err = cli(capsys, argv)
    msg = one_line_error(code, err)
    assert LONG[:400] not in msg
    if value.startswith("["):
        assert value.strip() in msg  # shown as typed, not as markup


def test_user_text_is_never_read_as_markup(tmp_path, capsys):
    """A model name with rich markup in it prints as typed, in the table and in JSON."""
    d = tmp_path / "dir[bold]x"
    d.mkdir()
    cfg = json.loads((HF / "llama3-8b.json").read_text()) | {"_name_or_path": "my[bold]model[/bold]"}
    (d / "config.json").write_text(json.dumps(cfg))
    code, out, err = cli(capsys, ["train", "--hf-config", str(d / "config.json"), "--tokens", "1e11"])
    assert code == 0, err
    assert "my[bold]model[/bold]" in out.replace("\n", "")
    code, out, err = cli(capsys, ["train", "--hf-config", str(d / "config.json"), "--tokens", "1e11", "--json"])
    assert code == 0 and _strict_json(out)["model"]["name"] == "my[bold]model[/bold]"


# --------------------------------------------------------------------------- files: HF config and calibration

def _raw_replace(text: str, key: str, raw: str) -> str:
    """``text`` (a JSON object) with ``key``'s value replaced by the raw JSON text ``raw``."""
    d = json.loads(text)
    d[key] = "__RAW__"
    return json.dumps(d).replace('"__RAW__"', raw)


DEEP = "[" * 100_000 + "]" * 100_000
HF_BASE = (HF / "llama3-8b.json").read_text()
HF_CASES = {
    "layers-1e400": _raw_replace(HF_BASE, "num_hidden_layers", "1e400"),
    "layers-10^400-int": _raw_replace(HF_BASE, "num_hidden_layers", "1" + "0" * 400),
    "layers-5000-digits": _raw_replace(HF_BASE, "num_hidden_layers", HUGE),
    "hidden-5000-digits": _raw_replace(HF_BASE, "hidden_size", HUGE),
    "vocab-1e18": _raw_replace(HF_BASE, "vocab_size", "1000000000000000000"),
    "hidden-string": _raw_replace(HF_BASE, "hidden_size", '"4096"'),
    "hidden-list": _raw_replace(HF_BASE, "hidden_size", "[4096]"),
    "hidden-bool": _raw_replace(HF_BASE, "hidden_size", "true"),
    "hidden-negative": _raw_replace(HF_BASE, "hidden_size", "-4096"),
    "hidden-zero": _raw_replace(HF_BASE, "hidden_size", "0"),
    "hidden-fraction": _raw_replace(HF_BASE, "hidden_size", "4096.5"),
    "hidden-nan": _raw_replace(HF_BASE, "hidden_size", "NaN"),
    "heads-infinity": _raw_replace(HF_BASE, "num_attention_heads", "Infinity"),
    "heads-not-dividing": _raw_replace(HF_BASE, "num_attention_heads", "7"),
    "rope-scaling-string": _raw_replace(HF_BASE, "rope_scaling", '"yes"'),
    "rope-scaling-deep": _raw_replace(HF_BASE, "rope_scaling", "[" * 100_000 + "]" * 100_000),
    "tie-string": _raw_replace(HF_BASE, "tie_word_embeddings", '"no"'),
    "model-type-number": _raw_replace(HF_BASE, "model_type", "7"),
    "model-type-unknown": _raw_replace(HF_BASE, "model_type", '"bert"'),
    "model-type-list": _raw_replace(HF_BASE, "model_type", '["llama"]'),
    "rope-original-text": _raw_replace(HF_BASE, "rope_scaling", '{"original_max_position_embeddings": "x"}'),
    "rope-original-10^400": _raw_replace(HF_BASE, "rope_scaling",
                                         '{"original_max_position_embeddings": 1' + "0" * 400 + "}"),
    "rope-original-negative": _raw_replace(HF_BASE, "rope_scaling", '{"original_max_position_embeddings": -5}'),
    "original-max-positions-text": _raw_replace(HF_BASE, "original_max_position_embeddings", '"big"'),
    "kv-heads-above-heads": _raw_replace(HF_BASE, "num_key_value_heads", "64"),
    "layers-zero": _raw_replace(HF_BASE, "num_hidden_layers", "0"),
    "vocab-zero": _raw_replace(HF_BASE, "vocab_size", "0"),
    "deep-nesting": DEEP,
    "deep-object": '{"a":' * 100_000 + "1" + "}" * 100_000,
    "a-list": "[1, 2, 3]",
    "a-number": HUGE,
    "empty": "",
    "not-json": "{ model_type: llama",
    "binary": "\x00\x01\xff",
}


@pytest.mark.parametrize("case", sorted(HF_CASES))
def test_hostile_hf_config_files(tmp_path, capsys, case):
    p = tmp_path / "config.json"
    text = HF_CASES[case]
    p.write_bytes(text.encode("latin-1") if case == "binary" else text.encode())
    code, out, err = cli(capsys, ["train", "--hf-config", str(p), "--tokens", "1e11", "--json"])
    msg = one_line_error(code, err)
    assert HUGE[:100] not in msg


VALID_CAL = {"schema": "llm-cost-calibration", "schema_version": 2, "id": "hostile",
             "hardware": {"accelerator_id": "h100-sxm", "device_type": "cuda", "device_name": "NVIDIA H100"},
             "kernel_model": {"bf16": {"gemm_flops_per_s": 6e14, "gemm_overhead_s": 5e-6}},
             "memory": {"bytes_per_s": 2.5e12, "overhead_s": 2e-6},
             "power": {"idle_w": 90.0, "slope_w": 700.0, "max_w": 700.0},
             "collectives": {"all_reduce": {"bus_bytes_per_s": 3e11, "latency_s": 1e-5}},
             "holdout": {"n": 12, "time_median_abs_rel_err": 0.08, "time_worst_abs_rel_err": 0.3}}


def _cal_text(path: tuple, raw: str) -> str:
    d = copy.deepcopy(VALID_CAL)
    node = d
    for k in path[:-1]:
        node = node[k]
    node[path[-1]] = "__RAW__"
    return json.dumps(d).replace('"__RAW__"', raw)


CAL_CASES = {
    "valid": json.dumps(VALID_CAL),
    **{f"{'.'.join(p)}={name}": _cal_text(p, raw)
       for p in (("kernel_model", "bf16", "gemm_flops_per_s"), ("kernel_model", "bf16", "gemm_overhead_s"),
                 ("memory", "bytes_per_s"), ("power", "idle_w"), ("power", "max_w"),
                 ("collectives", "all_reduce", "bus_bytes_per_s"), ("collectives", "all_reduce", "latency_s"),
                 ("holdout", "time_worst_abs_rel_err"), ("holdout", "time_median_abs_rel_err"))
       for name, raw in (("1e400", "1e400"), ("10^400", "1" + "0" * 400), ("huge-int", HUGE), ("string", '"fast"'),
                         ("negative", "-0.3"), ("tiny", "1e-300"), ("nan", "NaN"), ("list", "[1]"),
                         ("deep", "[" * 100_000 + "]" * 100_000))},
    "holdout-n-string": _cal_text(("holdout", "n"), '"twelve"'),
    "holdout-n-huge": _cal_text(("holdout", "n"), HUGE),
    "holdout-list": _cal_text(("holdout",), "[0.1]"),
    "holdout-by-kind-string": _cal_text(("holdout", "by_kind"), '{"gemm": {"time_median_abs_rel_err": "x"}}'),
    "kernel-model-list": _cal_text(("kernel_model",), "[1]"),
    "kernel-model-empty": _cal_text(("kernel_model",), "{}"),
    "memory-string": _cal_text(("memory",), '"fast"'),
    "power-string": _cal_text(("power",), '"hot"'),
    "collectives-list": _cal_text(("collectives",), "[1]"),
    "by-world-size-bad-key": _cal_text(("collectives", "all_reduce", "by_world_size"),
                                       '{"eight": {"bus_bytes_per_s": 3e11}}'),
    "hardware-string": _cal_text(("hardware",), '"h100"'),
    "device-type-number": _cal_text(("hardware", "device_type"), "7"),
    "accelerator-id-number": _cal_text(("hardware", "accelerator_id"), "7"),
    "schema-version-huge": _cal_text(("schema_version",), HUGE),
    "schema-version-true": _cal_text(("schema_version",), "true"),
    "id-deep": _cal_text(("id",), "[" * 100_000 + "]" * 100_000),
    "warnings-string": _cal_text(("warnings",), '"careful"'),
    "data-source-list": _cal_text(("data_source",), "[1]"),
    "deep-nesting": DEEP,
    "a-number": HUGE,
    "empty": "",
    "binary": "\x00\xff",
}
# ~0 is a physical overhead, latency, held-out error or idle power: these work (and print strict JSON)
CAL_WORKS = {"valid", *(f"{k}=tiny" for k in ("kernel_model.bf16.gemm_overhead_s", "collectives.all_reduce.latency_s",
                                              "holdout.time_worst_abs_rel_err", "holdout.time_median_abs_rel_err",
                                              "power.idle_w"))}


@pytest.mark.parametrize("case", sorted(CAL_CASES))
@pytest.mark.parametrize("mode", [TRAIN, SERVE])
def test_hostile_calibration_files(tmp_path, capsys, case, mode):
    p = tmp_path / "cal.json"
    text = CAL_CASES[case]
    p.write_bytes(text.encode("latin-1") if case == "binary" else text.encode())
    base = BASE[mode] if mode == SERVE else ["train", "--params", "7e9", "--tokens", "1e11", "--json"]
    code, out, err = cli(capsys, [*base, "--gpu", "h100-sxm", "--calibration", str(p)])
    msg = ok_or_one_line_error(code, out, err)
    if case in CAL_WORKS:
        assert code == 0, err
        d = _strict_json(out)
        assert (d.get("calibration") or d.get("estimate", {}).get("calibration"))["id"] == "hostile"
    else:
        assert msg is not None and "cal.json" in msg, f"calibration {case} was accepted"
        assert HUGE[:100] not in msg


# --------------------------------------------------------------------------- Python API


def _cli_message(capsys, argv: list[str]) -> str:
    code, _, err = cli(capsys, argv)
    return one_line_error(code, err)


API_SAME_AS_CLI = [  # (id, API call, CLI argv): the same one-line message either way
    ("tp-zero", lambda: estimate_training(params=7e9, tp=0), ["train", "--params", "7e9", "--tp", "0"]),
    ("tp-fraction", lambda: estimate_training(params=7e9, tp=2.5), ["train", "--params", "7e9", "--tp", "2.5"]),
    ("tp-text", lambda: estimate_training(params=7e9, tp="two"), ["train", "--params", "7e9", "--tp", "two"]),
    ("gpus-1e18", lambda: estimate_training(params=7e9, gpus=1e18), ["train", "--params", "7e9", "--gpus", "1e18"]),
    ("params-text", lambda: estimate_training(params="big"), ["train", "--params", "big"]),
    ("params-nan", lambda: estimate_training(params=math.nan), ["train", "--params", "nan"]),
    ("seq-len-fraction", lambda: estimate_training(params=7e9, seq_len=4096.5),
     ["train", "--params", "7e9", "--seq-len", "4096.5"]),
    ("unknown-preset", lambda: estimate_training("llama99"), ["train", "--preset", "llama99"]),
    ("empty-gpu", lambda: estimate_training(params=7e9, gpu=""), ["train", "--params", "7e9", "--gpu", ""]),
    ("experts-with-active", lambda: estimate_training(params=47e9, active_params=13e9, experts=64),
     ["train", "--params", "47e9", "--active-params", "13e9", "--experts", "64"]),
    ("serve-batch-zero", lambda: estimate_inference(params=7e9, batch=0), ["serve", "--params", "7e9", "--batch", "0"]),
    ("serve-unknown-preset", lambda: estimate_inference("llama99"), ["serve", "--preset", "llama99"]),
    ("plan-budget-flops-1", lambda: plan(budget_flops=1), ["plan", "--budget-flops", "1"]),
    ("plan-budget-nan", lambda: plan(budget_usd=math.nan), ["plan", "--budget-usd", "nan"]),
    ("plan-gpus-zero", lambda: plan(budget_usd=1e8, gpus=0), ["plan", "--budget-usd", "1e8", "--gpus", "0"]),
]


@pytest.mark.parametrize("call,argv", [c[1:] for c in API_SAME_AS_CLI], ids=[c[0] for c in API_SAME_AS_CLI])
def test_api_raises_the_message_the_cli_prints(capsys, call, argv):
    with _deadline(), pytest.raises(EstimatorInputError) as exc:
        call()
    assert "\n" not in str(exc.value)
    assert str(exc.value) == _cli_message(capsys, argv)


API_CASES = [  # (id, call, expected exception type or None when it works)
    ("preset-as-string-train", lambda: estimate_training("llama3-8b", tokens=1e11), None),
    ("preset-as-model-kw", lambda: estimate_training(model="llama3-8b", tokens=1e11), None),
    ("preset-as-string-serve", lambda: estimate_inference("llama3-8b"), None),
    ("preset-as-string-plan", lambda: plan(budget_usd=1e7, model="llama3-8b", compare=False), None),
    ("preset-case-space", lambda: estimate_training("  LLAMA3-8B ", tokens=1e11), None),
    ("gpu-number", lambda: estimate_training(params=7e9, gpu=100), TypeError),
    ("gpu-number-serve", lambda: estimate_inference(params=7e9, gpu=100), TypeError),
    ("region-number", lambda: estimate_training(params=7e9, region=49), TypeError),
    ("model-number", lambda: estimate_training(model=7e9), TypeError),
    ("model-list", lambda: estimate_inference(model=["llama3-8b"]), TypeError),
    ("calibration-number", lambda: estimate_training(params=7e9, calibration=3), TypeError),
    ("owned-string", lambda: estimate_training(params=7e9, owned="yes"), TypeError),
    ("unknown-keyword", lambda: estimate_training(params=7e9, gpuz=8), TypeError),
    ("target-days-zero", lambda: estimate_training(params=7e9, target_days=0), EstimatorInputError),
    ("target-days-negative", lambda: estimate_training(params=7e9, target_days=-1), EstimatorInputError),
    ("target-days-inf", lambda: estimate_training(params=7e9, target_days=math.inf), EstimatorInputError),
    ("target-days-tiny", lambda: estimate_training(params=7e9, target_days=1e-300), EstimatorInputError),
    ("framework-efficiency-zero", lambda: estimate_training(params=7e9, framework_efficiency=0), EstimatorInputError),
    ("failure-rate-nan", lambda: estimate_training(params=7e9, failure_rate_per_gpu_hour=math.nan),
     EstimatorInputError),
    ("failure-rate-huge", lambda: estimate_training(params=7e9, failure_rate_per_gpu_hour=1e300), EstimatorInputError),
    ("restart-huge", lambda: estimate_training(params=7e9, restart_overhead_hours=1e300), EstimatorInputError),
    ("pp-zero", lambda: estimate_training(params=7e9, pp=0), EstimatorInputError),
    ("cp-zero", lambda: estimate_training(params=7e9, cp=0), EstimatorInputError),
    ("tp-bool", lambda: estimate_training(params=7e9, tp=True), EstimatorInputError),
    ("params-huge-int", lambda: estimate_training(params=10 ** 5000), EstimatorInputError),
    ("tokens-huge-int", lambda: estimate_training(params=7e9, tokens=10 ** 400), EstimatorInputError),
    ("layers-text", lambda: estimate_training(params=7e9, layers="many"), EstimatorInputError),
    ("layers-zero", lambda: estimate_training(params=7e9, layers=0), EstimatorInputError),
    ("d-model-huge", lambda: estimate_training(params=7e9, d_model=10 ** 400), EstimatorInputError),
    ("ept-zero-active", lambda: estimate_training(params=47e9, active_params=13e9, experts_per_token=0),
     EstimatorInputError),
    ("serve-seq-len-zero", lambda: estimate_inference(params=7e9, seq_len=0), EstimatorInputError),
    ("serve-kv-fp4", lambda: estimate_inference(params=7e9, kv_precision="fp4"), EstimatorInputError),
    ("plan-no-budget", lambda: plan(), EstimatorInputError),
    ("plan-budget-text", lambda: plan(budget_usd="lots"), EstimatorInputError),
    ("plan-target-days-zero", lambda: plan(budget_usd=1e8, target_days=0), EstimatorInputError),
    ("plan-unique-tokens-zero", lambda: plan(budget_usd=1e8, unique_tokens=0), EstimatorInputError),
    ("plan-scaling-law-number", lambda: plan(budget_usd=1e8, scaling_law=3), TypeError),
    ("plan-preset-unknown", lambda: plan(budget_usd=1e8, model="llama99"), EstimatorInputError),
]


@pytest.mark.parametrize("call,exc", [c[1:] for c in API_CASES], ids=[c[0] for c in API_CASES])
def test_python_api_hostile(call, exc):
    with _deadline():
        if exc is None:
            r = call()
            json.dumps(r.to_dict(), allow_nan=False, default=str)  # strict JSON: no NaN/Infinity anywhere
            return
        with pytest.raises(exc) as info:
            call()
    assert type(info.value) is exc or issubclass(type(info.value), exc)
    msg = str(info.value)
    assert msg and "\n" not in msg and len(msg) < 600
    if exc is EstimatorInputError:
        assert "; " in msg


# --------------------------------------------------------------------------- profiler

try:
    import torch

    from profiler import cli as pcli
    from profiler import sweep as psweep
except ImportError:  # the profiler's extra is not installed: its cases are skipped, the estimator's still run
    torch = None
pytestmark_torch = pytest.mark.skipif(torch is None, reason="needs the profiler extra (torch)")

ROWS = [json.loads(ln) for ln in (PROFILE_FIXTURE / "measurements.jsonl").read_text().splitlines() if ln.strip()]


def pcli_run(capsys, args):
    return cli(capsys, args, entry=pcli.main)


def _mutate_rows(how: str, which: str) -> list[dict]:
    rows = copy.deepcopy(ROWS)
    targets = rows if which == "all" else [next(r for r in rows if r.get("status") == "ok")]
    for r in targets:
        if how.startswith("drop-"):
            r.pop(how[5:], None)
        else:
            key, _, val = how.partition("=")
            r[key] = json.loads(val)
    return rows


ROW_MUTATIONS = ["drop-kind", "drop-dtype", "drop-params", "drop-shape_id", "drop-status", "drop-time_s_median",
                 "drop-mode", "time_s_median=\"fast\"", "time_s_median=-1", "time_s_median=[1]", "params=\"m=1\"",
                 "params=null", "kind=7", "dtype=null", "dtype=\"fp4\"", "flops_analytic=\"many\"",
                 "flops_analytic=-5", "shape_id=7", "status=7", "mode=\"sideways\"", "energy_j=\"x\"",
                 "avg_power_w=\"x\"", "bytes_moved=\"x\"", "params={\"m\": \"x\", \"n\": 1, \"k\": 1}"]


@pytest.mark.parametrize("which", ["one", "all"])
@pytest.mark.parametrize("how", ROW_MUTATIONS)
@pytestmark_torch
def test_fit_on_malformed_measurement_rows(tmp_path, capsys, how, which):
    run = tmp_path / "run"
    run.mkdir()
    (run / "run.json").write_bytes((PROFILE_FIXTURE / "run.json").read_bytes())
    (run / "measurements.jsonl").write_text("".join(json.dumps(r) + "\n" for r in _mutate_rows(how, which)))
    code, out, err = pcli_run(capsys, ["fit", str(run), "--out", str(tmp_path / "cal.json")])
    assert "Traceback" not in err
    if code == 0:  # a row that does not matter to the fit may be tolerated; the file must then load
        from estimator.calibration import load_calibration

        load_calibration(tmp_path / "cal.json")
    else:
        one_line_error(code, err, prefix="profile-gpu: error: ")


RUN_JSON_CASES = {"not-json": "{ not json", "a-list": "[1, 2]", "no-sessions": json.dumps({"schema": "x"}),
                  "sessions-string": json.dumps({"sessions": "many"}),
                  "environment-string": json.dumps({"sessions": [], "environment": "cpu"}),
                  "deep": DEEP, "huge-int": HUGE, "empty": "", "binary": "\x00\xff"}


@pytest.mark.parametrize("case", sorted(RUN_JSON_CASES))
@pytestmark_torch
def test_resume_with_a_malformed_run_json(tmp_path, capsys, case):
    run = tmp_path / "run"
    run.mkdir()
    (run / "measurements.jsonl").write_bytes((PROFILE_FIXTURE / "measurements.jsonl").read_bytes())
    text = RUN_JSON_CASES[case]
    (run / "run.json").write_bytes(text.encode("latin-1") if case == "binary" else text.encode())
    code, out, err = pcli_run(capsys, ["sweep", "--quick", "--device", "cpu", "--out", str(run), "--resume",
                                       "--no-codecarbon", "--no-progress"])
    one_line_error(code, err, prefix="profile-gpu: error: ")
    assert (run / "run.json").read_bytes() == (text.encode("latin-1") if case == "binary" else text.encode())


@pytest.mark.parametrize("how", ["drop-shape_id", "shape_id=7", "shape_id=[1]", "drop-kind"])
@pytestmark_torch
def test_resume_with_a_row_without_shape_id(tmp_path, capsys, how):
    run = tmp_path / "run"
    run.mkdir()
    (run / "run.json").write_bytes((PROFILE_FIXTURE / "run.json").read_bytes())
    rows = _mutate_rows(how, "one")
    (run / "measurements.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    before = (run / "measurements.jsonl").read_bytes()
    code, out, err = pcli_run(capsys, ["sweep", "--quick", "--device", "cpu", "--out", str(run), "--resume",
                                       "--no-codecarbon", "--no-progress"])
    one_line_error(code, err, prefix="profile-gpu: error: ")
    assert (run / "measurements.jsonl").read_bytes() == before


COLLECTIVE_CASES = [["--iters", "0"], ["--iters", "-1"], ["--repeats", "0"], ["--nproc", "0"], ["--nproc", "1"],
                    ["--sizes", "0"], ["--sizes", "abc"], ["--sizes", HUGE], ["--iters", "1e9"], ["--ops", ""],
                    ["--ops", "all_reduse"], ["--iters", "many"], ["--nproc", "100000"]]


@pytest.mark.parametrize("extra", COLLECTIVE_CASES, ids=[" ".join(c)[:30] for c in COLLECTIVE_CASES])
@pytestmark_torch
def test_collectives_bad_input(tmp_path, capsys, extra):
    code, out, err = pcli_run(capsys, ["collectives", "--device", "cpu", "--out", str(tmp_path), *extra])
    one_line_error(code, err, prefix="profile-gpu: error: ")


PROFILER_USAGE = [[], ["import"], ["bogus"], ["sweep", "--bogus"], ["sweep", "--threads", "many"],
                  ["sweep", "--device", "tpu", "--out", "{tmp}"], ["sweep", "--quick", "--device", "cpu", "--threads",
                                                                 "0", "--out", "{tmp}", "--no-codecarbon"],
                  ["sweep", "--quick", "--device", "cpu", "--time-budget-s", "nan", "--out", "{tmp}"],
                  ["sweep", "--quick", "--device", "cpu", "--min-window-s", "-1", "--out", "{tmp}"],
                  ["sweep", "--quick", "--device", "cpu", "--counter-periods", "-1", "--out", "{tmp}"],
                  ["sweep", "--device", "cpu", "--kind", "gemm", "--shape", f"m={HUGE},n=1,k=1", "--out", "{tmp}"],
                  ["sweep", "--device", "cpu", "--kind", "gemm", "--shape", "m=inf,n=1,k=1", "--out", "{tmp}"],
                  ["fit", "{tmp}/nothing"], ["check", "{tmp}/nothing.json", "{tmp}"]]


@pytest.mark.parametrize("argv", PROFILER_USAGE, ids=[" ".join(a)[:40] or "no-command" for a in PROFILER_USAGE])
@pytestmark_torch
def test_profiler_usage_errors_are_one_line(tmp_path, capsys, argv):
    args = [a.replace("{tmp}", str(tmp_path / "out")) for a in argv]
    code, out, err = pcli_run(capsys, args)
    assert "error: ;" not in err
    one_line_error(code, err, prefix="profile-gpu: error: ")


@pytestmark_torch
def test_sweep_disk_full_mid_run_keeps_rows_and_says_one_line(tmp_path, capsys, monkeypatch):
    real = psweep.append_record
    calls = {"n": 0}

    def full_after_two(path, record):
        calls["n"] += 1
        if calls["n"] > 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        real(path, record)

    monkeypatch.setattr(psweep, "append_record", full_after_two)
    out_dir = tmp_path / "run"
    code, out, err = pcli_run(capsys, ["sweep", "--quick", "--device", "cpu", "--out", str(out_dir),
                                       "--no-codecarbon", "--no-progress", "--min-window-s", "0.001"])
    msg = one_line_error(code, err, prefix="profile-gpu: error: ")
    assert "space" in msg.lower() and "--resume" in msg
    rows = psweep.read_records(out_dir / psweep.MEASUREMENTS)
    assert len(rows) == 2 and all(r["shape_id"] for r in rows)


@pytestmark_torch
def test_oom_on_cpu_is_recorded_as_oom():
    try:
        torch.empty(2 ** 50, dtype=torch.uint8)
    except RuntimeError as err:
        assert psweep.is_oom(err), str(err)
    for text in ("DefaultCPUAllocator: can't allocate memory: you tried to allocate 1 bytes",
                 "DefaultCPUAllocator: not enough memory: you tried to allocate 1 bytes",
                 "CUDA out of memory. Tried to allocate 2.00 GiB"):
        assert psweep.is_oom(RuntimeError(text))
    assert not psweep.is_oom(RuntimeError("mat1 and mat2 shapes cannot be multiplied"))


@pytestmark_torch
def test_measure_shape_records_a_cpu_allocation_failure_as_oom(monkeypatch):
    from profiler import blocks
    from profiler.backend import open_backend
    from profiler.measure import RepeatConfig

    shape = psweep.quick_grid(("fp32",))[0]

    def no_memory(*a, **k):
        raise RuntimeError("[enforce fail at alloc_cpu.cpp:127] DefaultCPUAllocator: can't allocate memory: you tried "
                           "to allocate 1125899906842624 bytes. Error code 12 (Cannot allocate memory)")

    for name in ("build", "make_inputs", "build_shape"):
        if hasattr(blocks, name):
            monkeypatch.setattr(blocks, name, no_memory)
    backend = open_backend("cpu")
    try:
        rec = psweep.measure_shape(shape, "cpu", backend, RepeatConfig.quick())
    finally:
        backend.close()
    assert rec["status"] == "oom", rec


# --------------------------------------------------------------------------- a handful through the real entry points

SUBPROCESS = [
    (["estimate", "--gpus", "1e18", "--params", "7e9"], "--gpus"),
    (["estimate", "serve", "--params", "7e9", "--seq-len", "2.5"], "--seq-len"),
    (["estimate", "plan", "--budget-flops", "1"], "--budget-flops"),
    (["profile-gpu"], "profile-gpu"),
    (["profile-gpu", "collectives", "--iters", "0", "--device", "cpu", "--out", "{tmp}"], "--iters"),
]


@pytest.mark.parametrize("argv,needle", SUBPROCESS, ids=[" ".join(a[:3]) for a, _ in SUBPROCESS])
def test_console_entry_points(tmp_path, argv, needle):
    mod = "estimator.cli" if argv[0] == "estimate" else "profiler.cli"
    args = [a.replace("{tmp}", str(tmp_path)) for a in argv[1:]]
    code = f"import sys; from {mod} import main; main(sys.argv[1:])"
    r = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=60, cwd=tmp_path)
    prefix = "error: " if argv[0] == "estimate" else "profile-gpu: error: "
    msg = one_line_error(r.returncode, r.stderr, prefix=prefix)
    assert needle in msg or needle == "profile-gpu"

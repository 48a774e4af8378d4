"""``estimate``: what a training run, a serving setup or a budget costs.

    estimate train --params 70e9 --tokens 2e12        (flat form: estimate --params 70e9 --tokens 2e12)
    estimate serve --preset llama3-70b --batch 64     (flat form: estimate --inference ...)
    estimate plan --budget-usd 1e8 --gpus 16384       (flat form: estimate --budget-usd 1e8 ...)

The entry point only parses arguments and formats results; every number comes from the API. Each option
belongs to the modes listed in ``OPTIONS``; one given to another mode is an error naming the flag and the mode,
never silently ignored. Bad input prints one line, ``error: <what is wrong>; <how to fix it>``, exit code 2.
"""

from __future__ import annotations

import json
import math
import os
import sys
from dataclasses import dataclass
from typing import Any

import click

from estimator.errors import EstimatorInputError

TRAIN, SERVE, PLAN = "train", "serve", "plan"
MODE_NAMES = {TRAIN: "training", SERVE: "serving", PLAN: "planning"}
ALL, TP_, TS = frozenset((TRAIN, SERVE, PLAN)), frozenset((TRAIN, PLAN)), frozenset((TRAIN, SERVE))


class _Number(click.ParamType):
    """A real number. What does not parse is passed on as typed: the API refuses it (cast, then validated), so
    the CLI and the Python API print the same one line for the same value."""

    name = "number"

    def convert(self, value: Any, param: Any, ctx: Any) -> Any:
        try:
            return float(value)
        except (TypeError, ValueError, OverflowError):
            return value


class _Count(click.ParamType):
    """A whole number; scientific notation that is whole (1e5, 8.0) becomes an int. Anything else (2.5, text,
    nan) is passed on as a number or as typed, for the API to refuse with its own message (never rounded)."""

    name = "integer"

    def convert(self, value: Any, param: Any, ctx: Any) -> Any:
        if isinstance(value, int):
            return value
        try:
            v = float(value)
        except (TypeError, ValueError, OverflowError):
            return value
        if math.isfinite(v) and v == int(v):
            return int(v)
        return v if math.isfinite(v) else value


NUMBER, COUNT = _Number(), _Count()


def _choices(values) -> click.Choice:
    return click.Choice(list(values), case_sensitive=False)


@dataclass(frozen=True)
class Opt:
    """One command-line option: its flag, type, help, the modes it applies to, and a hint when misplaced."""

    flag: str
    type: Any
    help: str
    modes: frozenset = ALL
    misplaced: str = ""  # the fix to print when the flag is given to a mode it does not apply to
    is_flag: bool = False

    @property
    def dest(self) -> str:
        """The Python name (``--seq-len`` -> ``seq_len``)."""
        return self.flag.lstrip("-").replace("-", "_")


def _options() -> tuple[Opt, ...]:
    from estimator.config import framework_ids
    from estimator.flops import RECOMPUTE
    from estimator.hardware import TRAINING_PRECISIONS

    shape = "shape override (the model's own value otherwise)"
    return (
        Opt("--params", NUMBER, "Total parameters, e.g. 70e9."),
        Opt("--preset", str, "Known model (estimate --list-presets)."),
        Opt("--hf-config", str, "Local Hugging Face config.json."),
        Opt("--seq-len", COUNT, "Sequence (context) length."),
        *(Opt(f"--{k}", COUNT, f"Model {shape}.", TS, "a plan chooses the model's shape; pass --params or "
                                                       "--preset to fix the model")
          for k in ("layers", "d-model", "heads", "kv-heads", "ffn-dim", "vocab")),
        Opt("--experts", COUNT, "MoE: routed experts per layer.", TS, "a plan sizes a dense model"),
        Opt("--experts-per-token", COUNT, "MoE: experts each token uses.", TS, "a plan sizes a dense model"),
        Opt("--active-params", NUMBER, "MoE: parameters used per token.", TS, "a plan sizes a dense model"),
        Opt("--tokens", NUMBER, "Training tokens, e.g. 2e12.", TP_,
            "serving takes --prompt-tokens and --output-tokens per query"),
        Opt("--gpu", str, "Accelerator id or alias (estimate --list-gpus). Default h100-sxm."),
        Opt("--gpus", COUNT, "Number of GPUs (default: enough for ~90 days).", TP_,
            "a serving replica is sized with --gpus-per-replica, a fleet with --queries-per-day"),
        Opt("--precision", _choices(TRAINING_PRECISIONS), "Training GEMM precision.", TP_,
            "serving takes --weight-precision and --kv-precision"),
        *(Opt(f"--{k}", COUNT, f"{h} parallel size.", TP_, "a serving replica is tensor-parallel over "
                                                          "--gpus-per-replica")
          for k, h in (("tp", "Tensor"), ("pp", "Pipeline"), ("dp", "Data"), ("ep", "Expert (MoE)"),
                       ("cp", "Context"))),
        Opt("--zero", COUNT, "ZeRO stage 0-3 (3 = FSDP).", TP_),
        Opt("--recompute", _choices(RECOMPUTE), "Activation recomputation.", TP_),
        Opt("--micro-batch", COUNT, "Sequences per micro-batch.", TP_, "serving takes --batch"),
        Opt("--global-batch-tokens", NUMBER, "Tokens per optimizer step.", TP_, "serving takes --batch"),
        Opt("--mfu", NUMBER, "Override the time model with this MFU (0-1].", TP_),
        Opt("--framework", _choices(framework_ids()), "Training framework: gradient precision, the layouts it "
            "runs, activation profile (default megatron).", TP_),
        Opt("--no-flash-attention", bool, "Software before mid-2022: no FlashAttention, sequence parallelism or "
            "selective recomputation.", TP_, is_flag=True),
        Opt("--no-sequence-parallel", bool, "Tensor parallelism without sequence parallelism.", TP_, is_flag=True),
        Opt("--scaleout-gb-per-s", NUMBER, "Network bandwidth per GPU between nodes, GB/s each way (default: "
            "the GPU's reference system).", TP_),
        Opt("--ep-comm-overlap", bool, "MoE: hide the expert all-to-all under another micro-batch (Megatron-Core).",
            TP_, is_flag=True),
        Opt("--pue", NUMBER, "Power usage effectiveness (>= 1)."),
        Opt("--region", str, "Country, US state (US-VA), or cloud region (estimate --list-regions)."),
        Opt("--grid-intensity", NUMBER, "gCO2e/kWh; overrides --region."),
        Opt("--price-per-gpu-hour", NUMBER, "USD per GPU-hour."),
        Opt("--gpu-power-w", NUMBER, "Average power of one busy GPU, W.", TP_,
            "serving power comes from the phase model or a --calibration power curve"),
        Opt("--calibration", str, "Calibration file from 'profile-gpu fit'."),
        Opt("--force-calibration", bool, "Use a calibration measured on another GPU.", is_flag=True),
        Opt("--owned", bool, "Cost as owned hardware (capex + electricity).", TP_, "serving is priced per GPU-hour",
            is_flag=True),
        Opt("--capex-per-gpu", NUMBER, "USD per GPU incl. its server share (--owned).", TP_),
        Opt("--electricity-usd-per-kwh", NUMBER, "USD/kWh (--owned).", TP_),
        *_serve_and_plan_options(),
    )


def _serve_and_plan_options() -> tuple[Opt, ...]:
    from estimator.config import KV_PRECISIONS, WEIGHT_PRECISIONS

    return (
        *(Opt(f"--{k}", COUNT, h, frozenset((SERVE,)), "training takes --tokens and --global-batch-tokens")
          for k, h in (("prompt-tokens", "Prompt tokens per query (default 1000)."),
                       ("output-tokens", "Output tokens per query (default 500)."),
                       ("reasoning-tokens", "Hidden reasoning tokens per query (default 0)."),
                       ("batch", "Concurrent sequences per replica."),
                       ("gpus-per-replica", "Tensor-parallel GPUs per replica."))),
        Opt("--weight-precision", _choices(WEIGHT_PRECISIONS), "Serving weight precision.", frozenset((SERVE,)),
            "training takes --precision"),
        Opt("--kv-precision", _choices(KV_PRECISIONS), "Serving KV-cache precision.", frozenset((SERVE,)),
            "training takes --precision"),
        Opt("--queries-per-day", NUMBER, "Load for fleet sizing.", frozenset((SERVE,))),
        Opt("--peak-to-average", NUMBER, "Peak / average load (default 2).", frozenset((SERVE,))),
        Opt("--batching", _choices(("continuous", "static")), "Serving scheduler: continuous (in-flight, default) "
            "or static (whole batches, as TensorRT-LLM gptSessionBenchmark).", frozenset((SERVE,))),
        Opt("--optimise", _choices(("cost", "energy")), "What the default replica size and batch minimise per "
            "output token (default cost).", frozenset((SERVE,))),
        Opt("--ttft-slo-ms", NUMBER, "Time-to-first-token target for the default batch, ms (default 2000).",
            frozenset((SERVE,))),
        Opt("--tpot-slo-ms", NUMBER, "Time-per-output-token target for the default batch, ms (default 200).",
            frozenset((SERVE,))),
        *(Opt(f"--budget-{k}", NUMBER, f"The compute-optimal run {h} buys.", frozenset((PLAN,)),
              "a budget plans a training run")
          for k, h in (("usd", "this many USD"), ("mwh", "this much facility energy (MWh)"),
                       ("tco2e", "this much operational CO2e (t)"), ("days", "this many days on --gpus"),
                       ("flops", "this many training FLOPs"))),
        Opt("--scaling-law", str, "chinchilla3 (default) | besiroglu2024 | kaplan2020.", frozenset((PLAN,))),
        Opt("--lifetime-inference-tokens", NUMBER, "Tokens to be served; trade size for data (Sardana et al. 2023).",
            frozenset((PLAN,))),
        Opt("--unique-tokens", NUMBER, "Unique data available; repeat epochs (Muennighoff et al. 2023).",
            frozenset((PLAN,))),
        Opt("--no-compare", bool, "Skip the dense-vs-MoE comparison at the same budget.", frozenset((PLAN,)),
            is_flag=True),
    )


OPTIONS = _options()
BY_FLAG = {o.flag: o for o in OPTIONS}
COMMON = ("--json", "--list-gpus", "--list-regions", "--list-presets", "--help", "-h", "--version")
BUDGET_FLAGS = tuple(f for f in BY_FLAG if f.startswith("--budget-"))


def _shorten(msg: str, limit: int = 300) -> str:
    """``msg`` with every run of over ``limit`` characters without a space cut to 60 and its length: a value typed
    as 5,000 characters (a path, a name) is named, not echoed in full; the message stays one readable line."""
    import re

    return re.sub(r"[^\s;]{" + str(limit + 1) + ",}", lambda m: f"{m.group()[:60]}...({len(m.group()):,} characters)",
                  " ".join(msg.split()))


def _fail(msg: str) -> None:
    sys.stderr.write(f"error: {_shorten(msg)}\n")
    raise SystemExit(2)


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("llm-cost-estimator")
    except PackageNotFoundError:
        return "unknown (not installed)"


# --------------------------------------------------------------------------- mode and flag checks

def _flags(args: list[str]) -> list[str]:
    """The option names in ``args`` (``--x=1`` counts as ``--x``)."""
    return [a.split("=", 1)[0] for a in args if a.startswith("--")]


def choose_mode(argv: list[str]) -> tuple[str, list[str]]:
    """(mode, remaining args): an explicit sub-command, or the flat form's mode from its flags."""
    if argv and argv[0] in (TRAIN, SERVE, PLAN):
        return argv[0], argv[1:]
    flags = _flags(argv)
    if "--inference" in flags:
        if any(f in BUDGET_FLAGS for f in flags):
            raise EstimatorInputError("a budget plans training, not --inference", "drop --inference or the budget")
        return SERVE, [a for a in argv if a != "--inference"]
    if any(f in BUDGET_FLAGS for f in flags):
        return PLAN, argv
    return TRAIN, argv


def check_flags(mode: str, args: list[str]) -> None:
    """One line naming the first flag that belongs to another mode (unknown flags are left to the parser)."""
    for f in _flags(args):
        o = BY_FLAG.get(f)
        if f == "--inference":
            raise EstimatorInputError(f"--inference does not apply to estimate {mode}", "use estimate serve")
        if o is not None and mode not in o.modes:
            owner = next(MODE_NAMES[m] for m in (TRAIN, SERVE, PLAN) if m in o.modes)
            raise EstimatorInputError(f"{f} is a {owner} option: it does not apply to {MODE_NAMES[mode]} "
                                      f"(estimate {mode})", o.misplaced or f"drop {f}")


# --------------------------------------------------------------------------- commands

def _listing(kind: str, as_json: bool) -> None:
    from estimator import listings

    rows = listings.rows(kind)
    if as_json:
        print(json.dumps({"mode": f"list-{kind}", "schema_version": 1, "rows": rows}, default=str))
    else:
        listings.print_table(kind, rows)


def _model(kw: dict) -> Any:
    """The ModelSpec a --preset or --hf-config names, or None for --params."""
    preset, hf = kw.pop("preset", None), kw.pop("hf_config", None)
    if preset and hf:
        raise EstimatorInputError("--preset and --hf-config both given", "pass only one model source")
    if (preset or hf) and (kw.get("params") or kw.get("active_params")):
        raise EstimatorInputError("--params/--active-params given together with --preset/--hf-config",
                                  "a preset or config file fixes the size; drop --params")
    if preset:
        from estimator.presets import load_preset

        return load_preset(preset)
    if hf:
        from estimator.presets import from_hf_config

        return from_hf_config(hf)
    return None


def _emit(d: dict, as_json: bool, rows_fn: str, title: str, extra=None) -> None:
    if as_json:
        from estimator.formatting import json_safe

        print(json.dumps(json_safe(d), default=str, allow_nan=False))
        return
    from rich.console import Console

    from estimator import report

    console = Console(width=None if sys.stdout.isatty() else 140)
    view = d if extra is None else d | extra
    report.print_result(view, getattr(report, rows_fn)(d), title, console)
    if rows_fn == "plan_rows":
        console.print(report.attention_table_view(d["attention"]))


def run_mode(mode: str, kw: dict, as_json: bool) -> None:
    """Build the mode's config from the parsed options, estimate, and print."""
    kw = {k: v for k, v in kw.items() if v is not None and v is not False}
    if kw.pop("no_flash_attention", False):
        kw["flash_attention"] = False
    if kw.pop("no_sequence_parallel", False):
        kw["sequence_parallel"] = False
    model = _model(kw)
    if mode == TRAIN:
        from estimator.config import TrainingConfig
        from estimator.training import estimate_training

        _emit(estimate_training(TrainingConfig(model=model, **kw)).to_dict(), as_json, "training_rows",
              "Training estimate")
    elif mode == SERVE:
        from estimator.config import ServingConfig
        from estimator.inference import estimate_inference

        _emit(estimate_inference(ServingConfig(model=model, **kw)).to_dict(), as_json, "inference_rows",
              "Inference estimate")
    else:
        from estimator.config import PlanConfig
        from estimator.planning import plan

        budgets = {k: kw.pop(f"budget_{k}", None) for k in ("usd", "mwh", "tco2e", "days", "flops")}
        compare = not kw.pop("no_compare", False)
        cfg = PlanConfig.build(budgets, model=model, compare=compare, **kw)
        d = plan(config=cfg).to_dict()
        _emit(d, as_json, "plan_rows", "Plan from a budget",
              {"assumptions": d["estimate"]["assumptions"], "calibration": d["estimate"]["calibration"]})


def build_command(mode: str) -> click.Command:
    """The click command of one mode: its own options, typed, plus --json and the listings."""
    params: list[click.Parameter] = []
    for o in OPTIONS:
        if mode in o.modes:
            if o.is_flag:
                params.append(click.Option([o.flag], is_flag=True, default=False, help=o.help))
            else:
                params.append(click.Option([o.flag], type=o.type, default=None, help=o.help))
    params += [click.Option(["--json", "as_json"], is_flag=True, help="Print one JSON object."),
               *(click.Option([f"--list-{k}"], is_flag=True, help=f"List known {k} and exit.")
                 for k in ("gpus", "regions", "presets"))]

    def callback(as_json: bool, list_gpus: bool, list_regions: bool, list_presets: bool, **kw: Any) -> None:
        for kind, on in (("gpus", list_gpus), ("regions", list_regions), ("presets", list_presets)):
            if on:
                return _listing(kind, as_json)
        run_mode(mode, kw, as_json)

    helps = {TRAIN: "Estimate the FLOPs, GPU-hours, days, energy, CO2e and dollars of training a model.",
             SERVE: "Estimate serving: latency, throughput, energy, CO2e and dollars per token, query and fleet.",
             PLAN: "Plan the compute-optimal training run one budget buys, priced by the training estimate."}
    return click.Command(mode, params=params, callback=callback, help=helps[mode],
                         context_settings={"help_option_names": ["-h", "--help"]})


ROOT_HELP = """Usage: estimate [train|serve|plan] [OPTIONS]

  What a large model costs: FLOPs, GPU-hours, days, MWh, tCO2e and dollars.

  estimate train --params 70e9 --tokens 2e12     (also: estimate --params 70e9 --tokens 2e12)
  estimate serve --preset llama3-70b --batch 64  (also: estimate --inference ...)
  estimate plan --budget-usd 1e8 --gpus 16384    (also: estimate --budget-usd 1e8 ...)

  estimate MODE --help lists that mode's options, with their types. An option of another mode is an error.
  Also: --list-gpus, --list-regions, --list-presets (with --json for JSON), --version.
"""


def _dispatch(argv: list[str]) -> None:
    if argv[:1] in (["-h"], ["--help"]):
        print(ROOT_HELP.rstrip())
        print("\n" + build_command(TRAIN).get_help(click.Context(build_command(TRAIN), info_name="estimate train")))
        return
    if "--version" in argv:
        print(f"estimate (llm-cost-estimator) {_version()}")
        return
    if not argv:
        raise EstimatorInputError("no model given", "pass --params N, --preset NAME or --hf-config FILE "
                                  "(estimate --help lists every option)")
    mode, rest = choose_mode(argv)
    check_flags(mode, rest)
    build_command(mode).main(args=rest, prog_name=f"estimate {mode}", standalone_mode=False)


def _no_such_option(err: Any) -> str:
    hint = f" (did you mean {', '.join(err.possibilities)}?)" if err.possibilities else ""
    if BY_FLAG.get(err.option_name) is None:
        return f"unknown option {err.option_name}{hint}; see estimate --help"
    return f"{err.option_name} does not apply here; see estimate --help"


def _usage_message(err: BaseException) -> str:
    param = getattr(err, "param", None)
    msg = err.format_message() if hasattr(err, "format_message") else str(err)
    if param is not None and getattr(param, "opts", None):
        msg = f"{param.opts[0]} {getattr(err, 'message', msg)}"
    return msg.rstrip(".")


def main(argv: list[str] | None = None) -> None:
    """Console entry point: run the command, turning every user error into one line and exit code 2."""
    from estimator.errors import click_error_types
    from hardware_db.errors import HardwareDBError

    errs = click_error_types()
    args = sys.argv[1:] if argv is None else list(argv)
    try:
        _dispatch(args)
    except EstimatorInputError as err:
        _fail(str(err))
    except HardwareDBError as err:
        _fail(f"{err}; see estimate --list-gpus / --list-regions")
    except errs["NoSuchOption"] as exc:
        _fail(_no_such_option(exc))
    except errs["UsageError"] as exc:
        _fail(f"{_usage_message(exc)}; see estimate --help")
    except errs["Abort"]:
        _fail("aborted")
    except OSError as err:
        _fail(f"{err.strerror or err}: {getattr(err, 'filename', '') or ''}; check the path and permissions")
    except Exception as err:  # a bug, not bad input: still one line, but exit 1 (ESTIMATE_DEBUG=1 shows the trace)
        if os.environ.get("ESTIMATE_DEBUG"):
            raise
        sys.stderr.write(f"internal error: {type(err).__name__}: {err} (please report; ESTIMATE_DEBUG=1 for details)\n")
        raise SystemExit(1) from None


if __name__ == "__main__":
    main()

"""Shared pieces of the dashboard: URL-backed widgets, cached estimate calls and number formatting.

Every number shown comes from ``estimator.training.estimate_training(...).to_dict()`` (or another estimator
API); this module only parses inputs into the estimator's config records, caches calls and formats results with
``estimator.formatting`` and the labels of ``estimator.results.METRICS`` (shared with the CLI and the benchmark
report). No cost formula lives here.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pandas as pd
import streamlit as st

from estimator.config import ServingConfig, TrainingConfig, framework_ids
from estimator.errors import EstimatorInputError
from estimator.flops import RECOMPUTE
from estimator.formatting import fmt as _fmt
from estimator.formatting import metric_text
from estimator.hardware import TRAINING_PRECISIONS as PRECISIONS
from estimator.results import METRICS
from estimator.training import estimate_training

REPO = Path(__file__).resolve().parent.parent
AUTO = "(auto)"
DEFAULT = "(default)"

# --------------------------------------------------------------------------- URL-backed widget state


def _cast(value: str, like):
    """Parse a query-parameter string into the type of ``like`` (the widget default); ValueError if it is not one."""
    if isinstance(like, bool):
        return value.lower() in ("1", "true", "yes")
    if isinstance(like, int):
        v = float(value)
        if not math.isfinite(v) or v != int(v):
            raise ValueError(f"{value!r} is not a whole number")
        return int(v)
    if isinstance(like, float):
        v = float(value)
        if not math.isfinite(v):
            raise ValueError(f"{value!r} is not a finite number")
        return v
    return value


def init_state(key: str, default, options: list | None = None) -> None:
    """Seed ``st.session_state[key]`` from the URL (``?key=value``) once, else from ``default``.

    A URL value that is not usable (not a number, not one of the options) is reported with ``st.error`` once and
    the default is used instead: the widget then shows what the estimate really uses.
    """
    if key in st.session_state:
        return
    raw = st.query_params.get(key)
    value = default
    if raw is not None:
        try:
            value = _cast(raw, default)
        except (ValueError, OverflowError):
            value = None
        if value is None or (options is not None and value not in options):
            allowed = "" if options is None else f" (one of {', '.join(map(str, options[:8]))}" + (
                " ...)" if len(options) > 8 else ")")
            st.error(f"URL parameter {key}={raw[:40]!r} is not valid{allowed}; using the default {default!r}")
            value = default
    st.session_state[key] = value


def sync_url(defaults: dict) -> None:
    """Write the current value of each widget key to the URL; values equal to their default are left out."""
    for key, default in defaults.items():
        value = st.session_state.get(key, default)
        if value == default or value is None:
            if key in st.query_params:
                del st.query_params[key]
        else:
            st.query_params[key] = str(value)


class Form:
    """Widgets whose state lives in the URL: each call seeds the widget from ``?key=`` and records its default."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.defaults: dict = {}

    def key(self, name: str) -> str:
        return f"{self.prefix}_{name}"

    def text(self, name: str, label: str, default: str = "", where=st, help: str | None = None) -> str:
        k = self.key(name)
        self.defaults[k] = default
        init_state(k, default)
        return where.text_input(label, key=k, help=help)

    def select(self, name: str, label: str, options: list, default, where=st, help: str | None = None):
        k = self.key(name)
        self.defaults[k] = default
        init_state(k, default, options)
        return where.selectbox(label, options, key=k, help=help)

    def radio(self, name: str, label: str, options: list, default, where=st, horizontal: bool = True):
        k = self.key(name)
        self.defaults[k] = default
        init_state(k, default, options)
        return where.radio(label, options, key=k, horizontal=horizontal)

    def sync(self) -> None:
        sync_url(self.defaults)


# --------------------------------------------------------------------------- inputs -> estimate kwargs


def parse_number(text: str | None):
    """Blank -> None; a number (``7e9``, ``1,000``) -> float; anything else is passed on unchanged so the
    estimator's own validation names the problem."""
    if text is None:
        return None
    s = str(text).strip().replace(",", "").replace("_", "")
    if not s:
        return None
    if re.fullmatch(r"[+-]?[0-9]{1,15}", s):
        return int(s)  # "0" stays 0, so the estimator's message quotes what was typed
    try:
        return float(s)
    except ValueError:
        return s


@st.cache_data(show_spinner=False)
def preset_list() -> list[str]:
    from estimator.presets import preset_names

    return preset_names()


@st.cache_data(show_spinner=False)
def gpu_list() -> list[str]:
    from hardware_db import accelerators

    return list(accelerators())


@st.cache_data(show_spinner=False)
def region_list() -> list[str]:
    from hardware_db.regions import list_regions

    return [r.region for r in list_regions()]


@st.cache_data(show_spinner=False)
def region_labels() -> dict[str, str]:
    """Region id -> "DEU — Germany (381 g/kWh)"; the default entry names the region it stands for."""
    from estimator.hardware import assumption
    from hardware_db.regions import list_regions

    labels = {r.region: f"{r.region} — {r.name} ({r.g_per_kwh:.0f} g/kWh)" for r in list_regions()}
    default = str(assumption("default_region").value)
    labels[DEFAULT] = f"{DEFAULT} {labels.get(default, default)}"
    return labels


def region_select(form: Form, name: str, label: str, default: str = DEFAULT, where=st) -> str | None:
    """A region selectbox with labelled names (searchable by country or cloud-region name); None = the default.

    Only listed regions can be chosen, so the label shown is always the region the estimate uses: text typed into
    the box that matches no region selects nothing and the box keeps showing the region in effect.
    """
    regions = [DEFAULT, *region_list()]
    labels = region_labels()
    k = form.key(name)
    form.defaults[k] = default
    init_state(k, default, regions)
    reg = where.selectbox(label, regions, key=k, format_func=lambda r: labels.get(r, r))
    return None if reg in (DEFAULT, None) else reg


def grid_caption(d: dict) -> str:
    """Which grid carbon intensity an estimate used, from its assumptions record ("Germany, 381 gCO2e/kWh")."""
    g = d["assumptions"].get("grid_intensity_g_per_kwh", {})
    src = str(g.get("source", ""))
    where = "user input" if src.startswith("user input") else src.split(":")[0]
    return f"Grid intensity used: {where}, {fmt_value(g.get('value'), 'gCO2e/kWh')}"


ARCH_FIELDS = (("layers", "Layers"), ("d_model", "d_model"), ("heads", "Attention heads"), ("kv_heads", "KV heads"),
               ("ffn_dim", "FFN width"), ("vocab", "Vocabulary"), ("seq_len", "Sequence length"),
               ("experts", "Experts (MoE)"), ("experts_per_token", "Experts per token"))
LAYOUT_FIELDS = (("tp", "Tensor parallel (TP)"), ("pp", "Pipeline parallel (PP)"), ("dp", "Data parallel (DP)"),
                 ("ep", "Expert parallel (EP)"), ("zero", "ZeRO stage"), ("micro_batch", "Micro-batch"),
                 ("global_batch_tokens", "Global batch (tokens)"))


def scenario_inputs(form: Form, full: bool = True, defaults: dict | None = None, where=st) -> dict:
    """Render the inputs of one training scenario and return ``estimate_training`` keyword arguments.

    ``full=False`` gives the compact set used on the Compare page (model, tokens, GPU, count, precision, region).
    """
    d = {"source": "preset", "preset": "llama3-8b", "params": "7e9", "active_params": "", "tokens": "2e12",
         "gpu": "h100-sxm", "gpus": "", "precision": AUTO, "region": DEFAULT} | (defaults or {})
    presets = preset_list()
    source = form.radio("source", "Model", ["preset", "parameters"], d["source"], where=where)
    kw: dict = {}
    if source == "preset":
        kw["preset"] = form.select("preset", "Preset", presets, d["preset"] if d["preset"] in presets else presets[0],
                                   where=where)
    else:
        kw["params"] = parse_number(form.text("params", "Parameters (total)", d["params"], where=where))
        kw["active_params"] = parse_number(form.text(
            "active_params", "Active parameters per token (MoE; blank = dense)", d["active_params"], where=where))
    kw["tokens"] = parse_number(form.text("tokens", "Training tokens", d["tokens"], where=where))
    if full:
        with where.expander("Architecture details (blank = preset / derived shape)"):
            for name, label in ARCH_FIELDS:
                kw[name] = parse_number(form.text(name, label, "", where=st))
    gpus = gpu_list()
    kw["gpu"] = form.select("gpu", "GPU type", gpus, d["gpu"], where=where)
    kw["gpus"] = parse_number(form.text("gpus", "GPU count (blank = enough for ~90 days)", d["gpus"], where=where))
    prec = form.select("precision", "Precision", [AUTO, *PRECISIONS], d["precision"], where=where)
    kw["precision"] = None if prec == AUTO else prec
    kw["region"] = region_select(form, "region", "Region (grid carbon intensity)", d["region"], where=where)
    if full:
        with where.expander("Parallel layout (blank = fastest layout that fits)"):
            for name, label in LAYOUT_FIELDS:
                kw[name] = parse_number(form.text(name, label, "", where=st))
            rec = form.select("recompute", "Activation recomputation", [AUTO, *RECOMPUTE], AUTO, where=st)
            kw["recompute"] = None if rec == AUTO else rec
        with where.expander("Energy, carbon, cost and efficiency (blank = documented defaults)"):
            kw["grid_intensity"] = parse_number(form.text("grid", "Grid intensity, gCO2e/kWh (overrides region)",
                                                          "", where=st))
            kw["pue"] = parse_number(form.text("pue", "PUE (facility / IT power)", "", where=st))
            kw["price_per_gpu_hour"] = parse_number(form.text("price", "Price, USD per GPU-hour", "", where=st))
            kw["gpu_power_w"] = parse_number(form.text("power", "Busy GPU power, W", "", where=st))
            kw["mfu"] = parse_number(form.text("mfu", "MFU (replaces the time model), 0-1", "", where=st))
            cal = form.text("calibration", "Calibration file path (JSON from 'profile-gpu fit')", "", where=st)
            kw["calibration"] = cal.strip() or None
            force = form.select("force_cal", "Apply a calibration from another GPU", ["no", "yes"], "no", where=st)
            kw["force_calibration"] = force == "yes"
        with where.expander("Software and network (blank = Megatron-LM today, the GPU's reference network)"):
            fw = form.select("framework", "Training framework", [AUTO, *framework_ids()], AUTO, where=st)
            kw["framework"] = None if fw == AUTO else fw
            era = form.select("era", "Software vintage", ["current", "before mid-2022 (no FlashAttention)"],
                              "current", where=st)
            kw["flash_attention"] = era == "current"
            sp = form.select("sp", "Sequence parallelism with TP", ["framework default", "off"], "framework default",
                             where=st)
            kw["sequence_parallel"] = False if sp == "off" else None
            ov = form.select("ep_overlap", "MoE all-to-all overlapped (Megatron-Core)", ["no", "yes"], "no", where=st)
            kw["ep_comm_overlap"] = ov == "yes"
            kw["scaleout_gb_per_s"] = parse_number(form.text(
                "scaleout", "Network per GPU between nodes, GB/s each way", "", where=st))
    keep_false = {"flash_attention"}  # False there is a choice (the pre-2022 stack), not "unset"
    return {k: v for k, v in kw.items() if v is not None and (v is not False or k in keep_false)}


# --------------------------------------------------------------------------- cached estimate


def _freeze(kwargs: dict) -> str:
    """A stable cache key for the inputs (the calibration file's mtime is part of it)."""
    items = dict(kwargs)
    cal = items.get("calibration")
    if cal:
        p = Path(cal)
        items["_cal_mtime"] = p.stat().st_mtime if p.is_file() else None
    return json.dumps(items, sort_keys=True, default=str)


@st.cache_data(show_spinner=False, max_entries=512)
def _estimate_cached(key: str) -> tuple[dict, pd.DataFrame]:
    kw = {k: v for k, v in json.loads(key).items() if not k.startswith("_")}
    return estimate_dict(kw)


def training_config(kwargs: dict) -> TrainingConfig:
    """The dashboard's inputs as the estimator's validated record (a preset is the model's name)."""
    kw = dict(kwargs)
    return TrainingConfig(model=kw.pop("preset", None), **kw)


def estimate_dict(kwargs: dict) -> tuple[dict, pd.DataFrame]:
    """``estimate_training(TrainingConfig(...))``; returns (to_dict(), to_frame())."""
    e = estimate_training(training_config(kwargs))
    return e.to_dict(), e.to_frame()


def estimate(kwargs: dict) -> tuple[dict, pd.DataFrame]:
    """Cached estimate keyed by the inputs; raises EstimatorInputError for bad inputs."""
    return _estimate_cached(_freeze(kwargs))


#: what a bad input can raise on its way through the estimator: its own one-line EstimatorInputError (a
#: ValueError), TypeError for a wrong type, and what a hostile calibration file can still provoke in parsing
INPUT_ERRORS = (ValueError, TypeError, ArithmeticError, RecursionError)


def error_text(err: BaseException) -> str:
    """One line for ``st.error``: the estimator's own message, else the exception's first line."""
    if isinstance(err, EstimatorInputError):
        return str(err)
    if isinstance(err, RecursionError):
        return "invalid input: nested too deeply to read; check the file or the fields above"
    if "integer string conversion" in str(err):
        return "invalid input: a number with thousands of digits cannot be read; check the file or the fields above"
    first = (str(err).splitlines() or [""])[0][:200]
    return f"invalid input: {first or type(err).__name__}; check the fields above"


def try_call(fn, kwargs, where=st):
    """``fn(kwargs)`` or None after showing the input problem in place with ``st.error`` (never a traceback)."""
    try:
        return fn(kwargs)
    except INPUT_ERRORS as err:
        where.error(error_text(err))
    return None


def run_or_error(kwargs: dict, where=st):
    """The training estimate, or None after showing the input problem in place (never a traceback)."""
    return try_call(estimate, kwargs, where)


def show_warnings(d: dict, where=st) -> None:
    """The estimate's warnings (e.g. 'no published price ...: cost not estimated'), one ``st.warning`` each."""
    for w in d.get("warnings", ()):
        where.warning(w)


# --------------------------------------------------------------------------- formatting

NOT_ESTIMATED = "—"


def label(key: str) -> str:
    """A metric's label from ``estimator.results.METRICS`` (the CLI and the benchmark report use the same)."""
    m = METRICS.get(key)
    return m.label if m else key


def fmt(key: str, v) -> str:
    """A metric as shown on the page: ``estimator.formatting.metric_text`` (the tests compare against this);
    None (not estimated: no price, no embodied figure) is shown as "—"."""
    return metric_text(key, v)


def fmt_value(v, unit: str = "") -> str:
    """A number that is not a headline metric (fleet figures, inputs), with ``estimator.formatting.fmt``."""
    if v is None:
        return NOT_ESTIMATED
    if unit == "USD":
        return f"${_fmt(v)}"
    text = _fmt(v, unit)
    return f"{text} {unit}".strip() if unit and unit not in ("fraction", "ratio") else text


def metric(where, key: str, d: dict, name: str | None = None) -> None:
    """``st.metric`` of ``d[key]`` with its range, or "—" and "not estimated" where the estimator gave None."""
    v = d.get(key)
    where.metric(name or label(key), fmt(key, v), help=f"to_dict()['{key}']")
    if v is None:
        where.caption("not estimated (see the warning below)")
        return
    r = fmt_range(key, d)
    if r:
        where.caption(r)


def fmt_range(key: str, d: dict) -> str | None:
    """"range LOW – HIGH" of a metric, or None where it has no range (or an open end)."""
    r = d.get("ranges", {}).get(key)
    if not r or r[0] is None or r[1] is None:
        return None
    return f"range {fmt(key, r[0])} – {fmt(key, r[1])}"


def assumptions_frame(d: dict) -> pd.DataFrame:
    rows = []
    for k, a in d["assumptions"].items():
        if isinstance(a, dict):
            rows.append({"assumption": k, "value": str(a.get("value")), "unit": a.get("unit", ""),
                         "low": "" if a.get("low") is None else str(a["low"]),
                         "high": "" if a.get("high") is None else str(a["high"]), "source": a.get("source", "")})
        else:
            rows.append({"assumption": k, "value": str(a), "unit": "", "low": "", "high": "", "source": ""})
    return pd.DataFrame(rows)


def energy_split(d: dict) -> dict[str, float]:
    """Facility energy (MWh) split into GPUs, hosts and cooling/PUE overhead, from to_dict fields only.

    IT energy = energy_mwh / pue (the estimator applies PUE to GPU + host power); hosts = IT - GPU energy.
    """
    pue = float(d["assumptions"]["pue"]["value"])
    it = d["energy_mwh"] / pue
    return {"GPUs": d["gpu_energy_mwh"], "Hosts (CPU, memory, network)": it - d["gpu_energy_mwh"],
            "Cooling / PUE overhead": d["energy_mwh"] - it}


def downloads(d: dict, frame: pd.DataFrame, name: str, where=st) -> None:
    c1, c2 = where.columns(2)
    c1.download_button("Download CSV", frame.to_csv(index=False), file_name=f"{name}.csv", mime="text/csv",
                       key=f"dl_csv_{name}")
    c2.download_button("Download JSON", json.dumps(d, indent=2, default=str), file_name=f"{name}.json",
                       mime="application/json", key=f"dl_json_{name}")


def optional_module(name: str):
    """Import an estimator module that other work may not have landed yet; None when absent."""
    import importlib

    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as err:
        if err.name and name.startswith(err.name):
            return None
        raise


# --------------------------------------------------------------------------- other estimator APIs, cached


@st.cache_data(show_spinner=False, max_entries=1024)
def _inference_cached(key: str) -> tuple[dict, pd.DataFrame]:
    from estimator.inference import estimate_inference

    kw = json.loads(key)
    e = estimate_inference(ServingConfig(model=kw.pop("preset", None), **kw))
    return e.to_dict(), e.to_frame()


def estimate_serving(kwargs: dict) -> tuple[dict, pd.DataFrame]:
    """Cached ``estimate_inference(ServingConfig(...))`` keyed by the inputs: (to_dict(), to_frame())."""
    return _inference_cached(json.dumps(kwargs, sort_keys=True, default=str))

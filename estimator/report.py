"""Formatting of estimates for the terminal: a table of headline numbers, ranges and assumptions."""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from estimator.formatting import fmt


def _row(t: Table, *cells: object) -> None:
    """Add a row of plain text: a model name or path such as ``my[bold]model`` prints as typed, never as markup."""
    t.add_row(*(Text(str(c)) for c in cells))


def headline_table(title: str, rows: list[tuple[str, object, object, object, str]]) -> Table:
    """rows: (label, value, low, high, unit)."""
    t = Table(title=title, title_justify="left")
    t.add_column("metric")
    t.add_column("value", justify="right")
    t.add_column("low", justify="right")
    t.add_column("high", justify="right")
    t.add_column("unit")
    for label, v, lo, hi, unit in rows:
        _row(t, label, fmt(v, unit), fmt(lo, unit), fmt(hi, unit), unit)
    return t


def assumptions_table(assumptions: dict) -> Table:
    """Every assumption with its value, range, unit and source."""
    t = Table(title="Assumptions (defaults used and their sources)", title_justify="left", show_lines=False)
    t.add_column("input")
    t.add_column("value", overflow="fold")
    t.add_column("source", overflow="fold")
    for k, a in assumptions.items():
        if isinstance(a, dict):
            v = fmt(a.get("value"))
            if a.get("low") is not None:
                v += f" [{fmt(a['low'])}-{fmt(a['high'])}]"
            if a.get("unit"):
                v += f" {a['unit']}"
            _row(t, k, v, str(a.get("source", "")))
        else:
            _row(t, k, fmt(a), "")
    return t


def training_rows(d: dict) -> list[tuple[str, object, object, object, str]]:
    """Headline rows of a training estimate (``TrainingEstimate.to_dict()``)."""
    r = d["ranges"]
    lay = d["layout"]
    return [
        ("model", f"{d['model']['name']}: {d['model']['params']:.3g} params "
                  f"({d['model']['active_params']:.3g} active), {d['model']['layers']} layers, "
                  f"d_model {d['model']['d_model']}", None, None, ""),
        ("tokens", d["tokens"], None, None, "token"),
        ("training FLOPs (model)", d["flops"], None, None, "FLOP"),
        ("hardware FLOPs (with recompute)", d["hardware_flops"], None, None, "FLOP"),
        ("hardware", f"{d['gpus']:,} x {d['gpu']} ({d['precision']})", None, None, ""),
        ("parallel layout", f"TP{lay['tp']}" + (f" CP{lay['cp']}" if lay.get("cp", 1) > 1 else "")
         + f" PP{lay['pp']} DP{lay['dp']}" + (f" EP{lay['ep']}" if lay["ep"] > 1 else "")
         + f" ZeRO-{lay['zero']} mb{lay['micro_batch']}"
         + (f" interleave x{lay['interleave']}" if lay.get("interleave", 1) > 1 else "")
         + (f" recompute=full on {lay['recompute_fraction']:.0%} of layers" if lay["recompute"] == "partial"
            else f" recompute={lay['recompute']}"), None, None, ""),
        ("MFU (model FLOPs / peak, excl. downtime)", d["mfu"], None, None, "fraction"),
        ("goodput (failures, restarts, checkpoints)", d["goodput"], None, None, "fraction"),
        ("GPU-hours", d["gpu_hours"], *r["gpu_hours"], "GPU-h"),
        ("wall-clock", d["wall_clock_days"], *r["wall_clock_days"], "days"),
        ("memory per GPU", d["memory_per_gpu_gb"], None, None, f"GB of {d['memory_capacity_gb']:.1f}"),
        ("average GPU power", d["gpu_avg_power_w"], None, None, "W"),
        ("average facility power", d["avg_power_mw"], None, None, "MW"),
        ("peak facility power (TDP)", d["peak_power_mw"], None, None, "MW"),
        ("facility energy (with PUE)", d["energy_mwh"], *r["energy_mwh"], "MWh"),
        ("operational CO2e (location-based)", d["co2e_tonnes"], *r["co2e_tonnes"], "tCO2e"),
        ("embodied CO2e (amortised)", d["embodied_co2e_tonnes"], None, None, "tCO2e"),
        ("cost", d["cost_usd"], *r["cost_usd"], "USD"),
    ]


def print_result(d: dict, rows, title: str, console: Console | None = None) -> None:
    """Print the headline table, the calibration used, warnings and the assumptions."""
    console = console or Console()
    console.print(headline_table(title, rows))
    if d.get("calibration"):
        c = d["calibration"]
        used = ", ".join(c.get("used_for", [])) or "nothing (it has no rates for this precision and no power curve)"
        console.print(f"calibration: {c.get('id')} ({c.get('path')}), used for {used}"
                      + (f": {c['rates']}" if c.get("rates") else ""), markup=False)
    else:
        console.print("calibration: none (documented defaults; see assumptions)")
    for w in d.get("warnings", []):
        console.print(f"[yellow]warning:[/] {escape(str(w))}")
    console.print(assumptions_table(d.get("assumptions", {})))


def inference_rows(d: dict) -> list[tuple[str, object, object, object, str]]:
    """Headline rows of an inference estimate (``InferenceEstimate.to_dict()``)."""
    r = d["ranges"]
    m = d["model"]
    pre, dec = d["prefill"], d["decode"]
    rows = [
        ("model", (f"{m['name']}: {m['params']:.3g} params ({m['active_params']:.3g} active), {m['layers']} layers, "
                   f"d_model {m['d_model']}"), None, None, ""),
        ("replica", (f"{d['gpus_per_replica']} x {d['gpu']} (weights {d['weight_precision']}, "
                     f"KV {d['kv_precision']}, GEMMs {d['compute_precision']})"), None, None, ""),
        ("query", f"{d['prompt_tokens']:,} prompt + {d['output_tokens']:,} output"
                  + (f" + {d['reasoning_tokens']:,} reasoning" if d["reasoning_tokens"] else "") + " tokens",
         None, None, ""),
        ("batch (max that fits)", f"{d['batch']:,} ({d['max_batch']:,})", None, None, "sequences"),
        ("KV cache per token", d["kv_bytes_per_token"], None, None, "bytes"),
        ("KV cache of the batch (full context)", d["kv_cache_gb"], None, None, "GB per replica"),
        ("weights per GPU", d["weights_per_gpu_gb"], None, None, f"GB of {d['memory_capacity_gb']:.1f}"),
        ("time to first token (prefill)", d["ttft_ms"], *r["ttft_ms"], f"ms, {pre['bound']}-bound"),
        ("time per output token (decode)", d["tpot_ms"], *r["tpot_ms"], f"ms, {dec['bound']}-bound"),
        ("output tokens/s per GPU", d["tokens_per_second_per_gpu"], *r["tokens_per_second_per_gpu"], "token/s"),
        ("output tokens/s per replica", d["tokens_per_second_per_replica"], None, None, "token/s"),
        ("GPU power prefill / decode", f"{d['gpu_power_prefill_w']:,.0f} / {d['gpu_power_decode_w']:,.0f}",
         None, None, "W"),
        ("energy per output token (GPU)", d["energy_per_output_token_j"], *r["energy_per_output_token_j"], "J"),
        ("energy per query (GPU)", d["energy_per_query_wh"], *r["energy_per_query_wh"], "Wh"),
        ("energy per query (facility)", d["facility_energy_per_query_wh"], *r["facility_energy_per_query_wh"], "Wh"),
        ("CO2e per query (location-based)", d["co2e_per_query_g"], *r["co2e_per_query_g"], "gCO2e"),
        ("cost per million output tokens", d["cost_per_million_output_tokens_usd"],
         *r["cost_per_million_output_tokens_usd"], "USD"),
    ]
    f = d.get("fleet")
    if f:
        fr = f.get("ranges") or {}
        rows += [
            ("fleet: load", f"{f['queries_per_day']:,.0f} queries/day, peak x{f['peak_to_average']:g}", None, None, ""),
            ("fleet: replicas", f["replicas"], *fr.get("replicas", (None, None)), ""),
            ("fleet: GPUs", f["gpus"], *fr.get("gpus", (None, None)), "GPU"),
            ("fleet: average facility power", f["avg_power_mw"], *fr.get("avg_power_mw", (None, None)), "MW"),
            ("fleet: annual energy", f["annual_energy_mwh"], *fr.get("annual_energy_mwh", (None, None)), "MWh"),
            ("fleet: annual operational CO2e", f["annual_co2e_tonnes"], *fr.get("annual_co2e_tonnes", (None, None)),
             "tCO2e"),
            ("fleet: annual rental cost", f["annual_cost_usd"], *fr.get("annual_cost_usd", (None, None)), "USD"),
        ]
    return rows


def plan_rows(d: dict) -> list[tuple[str, object, object, object, str]]:
    """Headline rows of a plan (``PlanResult.to_dict()``): the budget, what it buys, and the law used."""
    b, e, law = d["budget"], d["estimate"], d["scaling_law"]
    r = e["ranges"]
    consts = ", ".join(f"{k}={v:g}" for k, v in law["constants"].items())
    rows = [
        ("budget", f"{b['flag']} {fmt(b['value'], b['unit'])} {b['unit']}", None, None, ""),
        ("budget used by the estimate", b["used_fraction"], None, None, "ratio"),
        ("scaling law", f"{law['name']}: {consts}", None, None, ""),
        ("parameters", d["params"], None, None, "param"),
        ("training tokens", d["tokens"], None, None, "token"),
        ("tokens per parameter", d["tokens_per_param"], None, None, ""),
        ("predicted loss", d["predicted_loss"], None, None, "nats/token"),
        ("training FLOPs (model; law uses 6ND)", d["flops"], None, None, "FLOP"),
        ("model shape", f"{e['model']['layers']} layers, d_model {e['model']['d_model']}, {e['model']['heads']} heads",
         None, None, ""),
        ("hardware", f"{e['gpus']:,} x {e['gpu']} ({e['precision']})", None, None, ""),
        ("MFU", e["mfu"], None, None, "fraction"),
        ("GPU-hours", d["gpu_hours"], *r["gpu_hours"], "GPU-h"),
        ("wall-clock", d["wall_clock_days"], *r["wall_clock_days"], "days"),
        ("facility energy (with PUE)", d["energy_mwh"], *r["energy_mwh"], "MWh"),
        ("operational CO2e (location-based)", d["co2e_tonnes"], *r["co2e_tonnes"], "tCO2e"),
        ("cost", d["cost_usd"], *r["cost_usd"], "USD"),
    ]
    data = d.get("data") or {}
    if data.get("unique_tokens"):
        rows.append(("epochs over unique data", data["epochs"], None, None, ""))
        rows.append(("effective tokens (Muennighoff et al. 2023)", data["effective_tokens"], None, None, "token"))
    inf = d.get("inference")
    if inf:
        t = inf["training_only_optimum"]
        rows += [("lifetime inference tokens", inf["lifetime_inference_tokens"], None, None, "token"),
                 ("lifetime FLOPs (train + 2NT)", inf["lifetime_flops"], None, None, "FLOP"),
                 ("training-only optimum", f"{t['params']:.3g} params, {t['tokens']:.3g} tokens, loss "
                  f"{t['predicted_loss']:.4f}, lifetime {t['lifetime_flops']:.3g} FLOP", None, None, "")]
    arch = d.get("architectures")
    if arch:
        rows.append(("architectures compared at", arch["compared_at"], None, None, ""))
        for a in arch["rows"]:
            size = f"{a['params']:.3g} total / {a['active_params']:.3g} active params"
            loss = f"loss {a['predicted_loss']:.4f}" if a["predicted_loss"] is not None else a["loss_note"]
            if a["fits"]:
                cost = "" if a["cost_usd"] is None else f", ${a['cost_usd']:.3g}"
                text = (f"{size}, {a['memory_per_gpu_gb']:.0f} GB/GPU, {a['gpu_hours']:.3g} GPU-h, "
                        f"{a['wall_clock_days']:.1f} days, {a['energy_mwh']:.3g} MWh{cost}; {loss}")
            else:
                text = f"{size}; does not fit on these GPUs ({a['error']}); {loss}"
            rows.append((f"  {a['architecture']}", text, None, None, ""))
    return rows


def attention_table_view(rows: list[dict]) -> Table:
    """Share of forward FLOPs in quadratic attention at long context, vs a linear-time sequence layer."""
    t = Table(title="Attention at long context (this model's shape)", title_justify="left")
    for c in ("context tokens", "attention share of FLOPs", "FLOPs/token", "linear-layer FLOPs/token (lower bound)",
              "quadratic / linear"):
        t.add_column(c, justify="right")
    for r in rows:
        _row(t, f"{r['seq_len']:,}", fmt(r["attention_share"], "fraction"), fmt(r["forward_flops_per_token"]),
                  fmt(r["linear_flops_per_token"]), f"{r['quadratic_over_linear']:.2f}x")
    return t

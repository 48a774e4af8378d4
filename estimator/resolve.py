"""From what the user gave (a preset, a config file, ``--params``, MoE sizes, shape overrides) to one ModelSpec."""

from __future__ import annotations

from estimator.errors import EstimatorInputError
from estimator.inputs import number
from estimator.model import ModelSpec, moe_from_total, param_count, shape_from_params, validate

SHAPE_FIELDS = ("layers", "d_model", "heads", "kv_heads", "ffn_dim", "vocab", "seq_len", "experts",
                "experts_per_token")


def moe_from_active(total: float, active: float, experts_per_token: int = 2, seq_len: int | None = None) -> ModelSpec:
    """An MoE decoder with ``active`` parameters per token and ``total`` overall.

    The dense recipe model of ``active`` parameters is split into fine-grained experts: each of the
    ``experts_per_token`` active experts is 1/k of its FFN, and the expert count is the one that
    brings the total closest to ``total``.
    """
    if active >= total:
        raise EstimatorInputError(f"--active-params ({active:g}) must be below --params ({total:g})",
                                  "pass the total parameters with --params and the per-token ones with --active-params")
    base = shape_from_params(active, seq_len or 8192)
    k = experts_per_token
    e_ffn = max(128, int(round(base.ffn_dim / k / 128)) * 128)
    probe = base.with_(experts=max(k, 2), experts_per_token=k, moe_ffn_dim=e_ffn, name="derived-moe")
    one = param_count(probe.with_(experts=k + 1)).total - param_count(probe.with_(experts=k)).total
    e = max(k + 1, int(round(k + (total - param_count(probe.with_(experts=k)).total) / one)))
    return probe.with_(experts=e)


def _derive(params, active_params, experts, experts_per_token, seq_len) -> tuple[ModelSpec, list[str]]:
    if params is None:
        raise EstimatorInputError("no model given", "pass --params N, --preset NAME or --hf-config FILE")
    n = number("params", params, hint="e.g. --params 70e9")
    if n < 1e6:
        raise EstimatorInputError(f"--params {params} is below a million parameters",
                                  "pass the parameter count itself, e.g. --params 7e9 for 7B")
    sl = int(seq_len) if seq_len else 8192
    if active_params is not None:
        a = number("active-params", active_params)
        if experts is not None:
            raise EstimatorInputError("--experts and --active-params both given",
                                      "pass --active-params (the expert count is derived) or --experts, not both")
        return (moe_from_active(n, a, int(experts_per_token or 2), sl),
                [f"MoE derived from total {n:g} and active {a:g} parameters"])
    if experts:
        return moe_from_total(n, int(experts), int(experts_per_token or 2), sl), []
    return shape_from_params(n, sl), []


def _overrides(model: ModelSpec, ov: dict) -> ModelSpec:
    for k, v in ov.items():
        f = number(k.replace("_", "-"), v)
        if f != int(f):
            raise EstimatorInputError(f"--{k.replace('_', '-')} must be an integer, got {v!r}",
                                      f"pass a whole number to --{k.replace('_', '-')}")
        ov[k] = int(f)
    if "d_model" in ov and "heads" not in ov and model.head_dim and ov["d_model"] % model.heads:
        ov["heads"] = max(1, ov["d_model"] // model.head_dim)
    if "heads" in ov and "kv_heads" not in ov and ov["heads"] % model.kv_heads:
        ov["kv_heads"] = ov["heads"]
    if "d_model" in ov or "heads" in ov:
        ov.setdefault("head_dim", None)
    model = model.with_(**ov)
    return model.with_(name="custom") if model.name == "derived" else model


def resolve_model(model: ModelSpec | None, params, active_params, experts, experts_per_token, seq_len,
                  overrides: dict) -> tuple[ModelSpec, list[str]]:
    """The model to estimate, validated, and notes on how it was derived."""
    notes: list[str] = []
    if model is None:
        model, notes = _derive(params, active_params, experts, experts_per_token, seq_len)
    elif experts:
        overrides = {**overrides, "experts": int(experts), "experts_per_token": int(experts_per_token or 2)}
    ov = {k: v for k, v in overrides.items() if v is not None}
    if seq_len is not None:
        ov["seq_len"] = seq_len
    if ov:
        model = _overrides(model, {k: v for k, v in ov.items() if k in SHAPE_FIELDS})
    model = validate(model)
    pc = param_count(model)
    emb = (pc.embedding + pc.lm_head) / pc.total if pc.total else 0.0
    if model.name in ("derived", "derived-moe") and emb > 0.5:
        notes.append(f"{emb:.0%} of the derived model's parameters are its {model.vocab:,}-token embedding and LM head "
                     f"({model.layers} layers, d_model {model.d_model}): the Llama 3 recipe does not fit a model this "
                     "small; pass --vocab, --layers and --d-model, or a preset")
    return model, notes


def shape_note(spec: ModelSpec) -> dict:
    """The ``model_shape`` assumption of a derived model (empty for presets and config files)."""
    if spec.name not in ("derived", "derived-moe"):
        return {}
    from estimator.assumptions import Assumed

    return {"model_shape": Assumed(f"{spec.layers} layers, d_model {spec.d_model}, {spec.heads} heads "
                                   f"({spec.kv_heads} KV), FFN {spec.ffn_dim}, vocab {spec.vocab}", "", spec.source)}

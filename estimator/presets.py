"""Named model shapes (``hardware_db/models.csv``) and a reader for Hugging Face ``config.json`` files.

Every preset row cites its architecture source (paper table or released config) and, where one is
published, the reported parameter count; ``tests/test_presets.py`` checks ``param_count`` against it.
The CSV is read lazily once (``functools.cache``) and validated on load.

``from_hf_config`` reads a *local* config.json (never the network) for the common decoder families
and returns the same ``ModelSpec`` a preset would give.
"""

from __future__ import annotations

import csv
import io
import json
from functools import cache
from importlib.resources import files
from pathlib import Path
from typing import Any

from estimator.errors import EstimatorInputError, suggest
from estimator.inputs import show
from estimator.model import ModelSpec, validate

# --- presets ------------------------------------------------------------------------------------

_INT_FIELDS = ("layers", "d_model", "heads", "kv_heads", "ffn_dim", "vocab", "seq_len", "head_dim", "experts",
               "experts_per_token", "shared_experts", "moe_ffn_dim", "dense_layers", "q_lora_rank", "kv_lora_rank",
               "qk_rope_head_dim", "v_head_dim")
_BOOL_FIELDS = ("gated_mlp", "tied_embeddings", "bias")
_STR_FIELDS = ("position", "norm")
_META_FIELDS = ("params_reported", "active_params_reported", "params_source", "source", "source_location",
                "retrieved", "notes")
_REQUIRED_META = ("source", "source_location", "retrieved")


def _normalise_head_dim(spec: ModelSpec) -> ModelSpec:
    """Keep ``head_dim`` only where it differs from d_model // heads, so equal shapes compare equal."""
    if spec.head_dim and spec.head_dim == spec.d_model // spec.heads and spec.d_model % spec.heads == 0:
        return spec.with_(head_dim=None)
    return spec


def _cell_int(name: str, field: str, text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"models.csv row {name!r}: {field} must be an integer, got {text!r}") from None


def _cell_bool(name: str, field: str, text: str) -> bool:
    low = text.strip().lower()
    if low in ("true", "false"):
        return low == "true"
    raise ValueError(f"models.csv row {name!r}: {field} must be true or false, got {text!r}")


def _cell_count(name: str, field: str, text: str) -> float | None:
    if not text.strip():
        return None
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"models.csv row {name!r}: {field} must be a number, got {text!r}") from None
    if value <= 0:
        raise ValueError(f"models.csv row {name!r}: {field} must be positive, got {text!r}")
    return value


def _spec_from_row(row: dict[str, str]) -> ModelSpec:
    """One CSV row -> validated ModelSpec; blank cells take the dataclass default."""
    name = row["name"].strip()
    kwargs: dict[str, Any] = {"name": name}
    for f in _INT_FIELDS:
        if row[f].strip():
            kwargs[f] = _cell_int(name, f, row[f])
    for f in _BOOL_FIELDS:
        if row[f].strip():
            kwargs[f] = _cell_bool(name, f, row[f])
    for f in _STR_FIELDS:
        if row[f].strip():
            kwargs[f] = row[f].strip()
    for f in _REQUIRED_META:
        if not row[f].strip():
            raise ValueError(f"models.csv row {name!r}: {f} is empty (every row cites its source)")
    meta = {
        "params_reported": _cell_count(name, "params_reported", row["params_reported"]),
        "active_params_reported": _cell_count(name, "active_params_reported", row["active_params_reported"]),
        "params_source": row["params_source"].strip(),
        "source_location": row["source_location"].strip(),
        "retrieved": row["retrieved"].strip(),
        "notes": row["notes"].strip(),
    }
    if meta["params_reported"] is not None and not meta["params_source"]:
        raise ValueError(f"models.csv row {name!r}: params_reported has no params_source")
    try:
        spec = ModelSpec(**kwargs, source=row["source"].strip(), notes=meta)
        return _normalise_head_dim(validate(spec))
    except EstimatorInputError as err:
        raise ValueError(f"models.csv row {name!r}: {err}") from None


@cache
def _rows() -> tuple[dict[str, str], ...]:
    text = files("hardware_db").joinpath("models.csv").read_text(encoding="utf-8")
    reader = csv.DictReader(text.splitlines())
    expected = ["name", *_INT_FIELDS, *_BOOL_FIELDS, *_STR_FIELDS, *_META_FIELDS]
    missing = [c for c in expected if c not in (reader.fieldnames or [])]
    if missing:
        raise ValueError(f"models.csv lacks columns {missing}")
    return tuple(dict(r) for r in reader)


@cache
def _presets() -> dict[str, ModelSpec]:
    out: dict[str, ModelSpec] = {}
    for row in _rows():
        spec = _spec_from_row(row)
        key = spec.name.lower()
        if key in out:
            raise ValueError(f"models.csv: duplicate preset {spec.name!r}")
        out[key] = spec
    return out


def preset_names() -> list[str]:
    """Preset ids in file order."""
    return [s.name for s in _presets().values()]


def load_preset(name: str) -> ModelSpec:
    """The named preset (case-insensitive); unknown names raise EstimatorInputError with suggestions."""
    if not isinstance(name, str):
        raise TypeError(f"preset must be a str, got {type(name).__name__}")
    key = name.strip().lower()
    spec = _presets().get(key)
    if spec is None:
        raise EstimatorInputError(f"unknown model preset {show(name)}",
                                  f"{suggest(key[:100], preset_names())} (estimate --list-presets)")
    return spec


def preset_rows() -> list[dict]:
    """One dict per preset for listing: shape, reported parameter counts and source."""
    rows = []
    for spec in _presets().values():
        d = spec.to_dict()
        d.update({k: spec.notes[k] for k in ("params_reported", "active_params_reported", "params_source",
                                             "source_location", "retrieved", "notes")})
        rows.append(d)
    return rows


# --- Hugging Face config.json ------------------------------------------------------------------

#: Pretraining contexts longer than this are capped (recorded in ``spec.notes``); RoPE models with a
#: ``rope_scaling.original_max_position_embeddings`` use that value, the context before extension.
SEQ_LEN_CAP = 32_768
MAX_CONFIG_INT = 10 ** 9  # no size in a model config (layers, width, vocab, context) comes near a billion

_LLAMA_LIKE = ("llama", "mistral", "mixtral", "qwen2", "qwen2_moe", "gemma", "gemma2", "olmo", "olmo2", "olmoe",
               "phi3")
SUPPORTED_MODEL_TYPES = (*_LLAMA_LIKE, "deepseek_v2", "deepseek_v3", "gpt2", "opt", "bloom")

# Hugging Face defaults for tie_word_embeddings where a config omits it (the library's config classes).
_TIE_DEFAULT = {"gemma": True, "gemma2": True, "gpt2": True, "opt": True, "bloom": True}


class _Cfg:
    """Typed access to a config dict; every failure is one EstimatorInputError line naming the key."""

    def __init__(self, data: dict, path: Path) -> None:
        self.data = data
        self.path = path

    def _pick(self, keys: tuple[str, ...]) -> tuple[str, Any] | None:
        for k in keys:
            if k in self.data and self.data[k] is not None:
                return k, self.data[k]
        return None

    def get_int(self, *keys: str, default: int | None = None, required: bool = True) -> Any:
        hit = self._pick(keys)
        if hit is None:
            if default is not None or not required:
                return default
            raise EstimatorInputError(f"{self.path.name} lacks {' / '.join(keys)}",
                                      "add the key (see the model's published config.json) or pass the shape by hand")
        key, value = hit
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= MAX_CONFIG_INT:
            raise EstimatorInputError(f"{self.path.name}: {key} must be an integer in [0, {MAX_CONFIG_INT:.0e}], got "
                                      f"{show(value)}", "fix the value in the config file")
        return value

    def get_bool(self, key: str, default: bool) -> bool:
        value = self.data.get(key, default)
        if value is None:
            return default
        if not isinstance(value, bool):
            raise EstimatorInputError(f"{self.path.name}: {key} must be true or false, got {value!r}",
                                      "fix the value in the config file")
        return value

    def get_obj(self, key: str) -> dict:
        value = self.data.get(key)
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise EstimatorInputError(f"{self.path.name}: {key} must be an object, got {value!r}",
                                      "fix the value in the config file")
        return value


def _why_unreadable(err: BaseException) -> str:
    """Why json could not read a file, in a few words (Python's own message names sys.set_int_max_str_digits)."""
    if isinstance(err, RecursionError):
        return "nested too deeply"
    if "integer string conversion" in str(err):
        return "a number with more than 4,300 digits"
    return f"{type(err).__name__}: {str(err).splitlines()[0][:80] if str(err) else 'unreadable'}"


def _read_json(path: str | Path) -> tuple[dict, Path]:
    p = Path(path).expanduser()
    if p.is_dir():
        p = p / "config.json"
    if not p.is_file():
        raise EstimatorInputError(f"no config file at {p}", "pass the path of a local Hugging Face config.json")
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise EstimatorInputError(f"{p} is not UTF-8 text", "pass a Hugging Face config.json") from None
    except json.JSONDecodeError as err:
        raise EstimatorInputError(f"{p} is not valid JSON (line {err.lineno}, column {err.colno}: {err.msg})",
                                  "pass a Hugging Face config.json") from None
    except (ValueError, RecursionError, OverflowError, MemoryError) as err:  # a 5,000-digit number, deep nesting
        raise EstimatorInputError(f"{p} cannot be read as a config ({_why_unreadable(err)})",
                                  "pass a Hugging Face config.json") from None
    if not isinstance(data, dict):
        raise EstimatorInputError(f"{p} holds a JSON {type(data).__name__}, not an object",
                                  "pass a Hugging Face config.json (a JSON object with model_type)")
    return data, p


def _seq_len(c: _Cfg, notes: dict, learned: bool) -> int:
    """Context length: learned tables use their full size; RoPE/ALiBi use the pre-extension context, capped."""
    raw = c.get_int("max_position_embeddings", "n_positions", "seq_length", required=False)
    notes["max_position_embeddings"] = raw
    if learned:
        if raw is None:
            c.get_int("max_position_embeddings", "n_positions")  # raises, naming the keys
        return raw  # type: ignore[return-value]
    original = c.get_obj("rope_scaling").get("original_max_position_embeddings") or c.data.get(
        "original_max_position_embeddings")
    if original is not None:
        seq = _Cfg({"original_max_position_embeddings": original}, c.path).get_int("original_max_position_embeddings")
        notes["seq_len_note"] = f"original_max_position_embeddings {seq} (context before RoPE extension)"
    elif raw is not None:
        seq = raw
    else:
        raise EstimatorInputError(f"{c.path.name} lacks max_position_embeddings",
                                  "add it, or use a preset with a known pretraining context")
    if seq > SEQ_LEN_CAP:
        notes["seq_len_note"] = f"context {seq} capped at {SEQ_LEN_CAP}"
        seq = SEQ_LEN_CAP
    return seq


def _llama_like(c: _Cfg, mt: str, notes: dict) -> dict:
    heads = c.get_int("num_attention_heads")
    kw: dict[str, Any] = {
        "layers": c.get_int("num_hidden_layers"), "d_model": c.get_int("hidden_size"), "heads": heads,
        "kv_heads": c.get_int("num_key_value_heads", default=heads), "ffn_dim": c.get_int("intermediate_size"),
        "vocab": c.get_int("vocab_size"), "head_dim": c.get_int("head_dim", required=False),
        "tied_embeddings": c.get_bool("tie_word_embeddings", _TIE_DEFAULT.get(mt, False)),
        "bias": c.get_bool("attention_bias", False) and c.get_bool("mlp_bias", False),
    }
    if c.get_bool("attention_bias", False) and not kw["bias"]:
        notes["bias_note"] = "attention biases without MLP biases are not modelled"
    if mt == "qwen2":
        notes["bias_note"] = "Qwen2 q/k/v biases are not modelled (a few thousand per layer)"
    if mt == "olmo":
        kw["norm"] = "layernorm"  # OLMo 1: non-parametric LayerNorm (Groeneveld et al. 2024, Table 1)
    if mt == "gemma2":
        notes["norm_note"] = "Gemma 2's extra post-norms (2 x d per layer) are not modelled"
    if mt == "mixtral":
        kw.update(experts=c.get_int("num_local_experts"), experts_per_token=c.get_int("num_experts_per_tok"))
    if mt == "olmoe":
        kw.update(experts=c.get_int("num_experts"), experts_per_token=c.get_int("num_experts_per_tok"))
    if mt == "qwen2_moe":
        _qwen2_moe(c, kw)
    return kw


def _qwen2_moe(c: _Cfg, kw: dict) -> None:
    """Qwen2-MoE: every layer routed, one wide shared expert expressed as whole expert widths."""
    expert = c.get_int("moe_intermediate_size")
    shared = c.get_int("shared_expert_intermediate_size", default=0)
    if c.get_int("decoder_sparse_step", default=1) != 1 or c.data.get("mlp_only_layers"):
        raise EstimatorInputError(f"{c.path.name}: qwen2_moe with dense layers interleaved is not supported",
                                  "describe the model with --layers/--experts by hand")
    if expert and shared % expert:
        raise EstimatorInputError(f"{c.path.name}: shared expert width {shared} is not a multiple of {expert}",
                                  "describe the model by hand")
    kw.update(experts=c.get_int("num_experts"), experts_per_token=c.get_int("num_experts_per_tok"), moe_ffn_dim=expert,
              shared_experts=shared // expert if expert else 0)


def _deepseek(c: _Cfg, mt: str) -> dict:
    heads = c.get_int("num_attention_heads")
    every = c.get_int("moe_layer_freq", default=1)
    if every != 1:
        raise EstimatorInputError(f"{c.path.name}: moe_layer_freq {every} is not supported (only 1)",
                                  "describe the model by hand")
    return {
        "layers": c.get_int("num_hidden_layers"), "d_model": c.get_int("hidden_size"), "heads": heads,
        "kv_heads": c.get_int("num_key_value_heads", default=heads), "ffn_dim": c.get_int("intermediate_size"),
        "vocab": c.get_int("vocab_size"), "head_dim": c.get_int("qk_nope_head_dim"),
        "experts": c.get_int("n_routed_experts"), "experts_per_token": c.get_int("num_experts_per_tok"),
        "shared_experts": c.get_int("n_shared_experts", default=0), "moe_ffn_dim": c.get_int("moe_intermediate_size"),
        "dense_layers": c.get_int("first_k_dense_replace", default=0),
        "q_lora_rank": c.get_int("q_lora_rank", default=0), "kv_lora_rank": c.get_int("kv_lora_rank"),
        "qk_rope_head_dim": c.get_int("qk_rope_head_dim"), "v_head_dim": c.get_int("v_head_dim"),
        "tied_embeddings": c.get_bool("tie_word_embeddings", False),
    }


def _gpt_like(c: _Cfg, mt: str, notes: dict) -> dict:
    gpt_common = {"gated_mlp": False, "norm": "layernorm", "bias": True,
                      "tied_embeddings": c.get_bool("tie_word_embeddings", True)}
    if mt == "gpt2":
        d = c.get_int("n_embd", "hidden_size")
        return dict(layers=c.get_int("n_layer", "num_hidden_layers"), d_model=d, heads=c.get_int("n_head"),
                    kv_heads=c.get_int("n_head"), ffn_dim=c.get_int("n_inner", default=4 * d),
                    vocab=c.get_int("vocab_size"), position="learned", **gpt_common)
    if mt == "opt":
        d = c.get_int("hidden_size")
        proj = c.get_int("word_embed_proj_dim", default=d)
        if proj != d:
            notes["embed_note"] = f"word_embed_proj_dim {proj} != hidden_size; projections not modelled"
        return dict(layers=c.get_int("num_hidden_layers"), d_model=d, heads=c.get_int("num_attention_heads"),
                    kv_heads=c.get_int("num_attention_heads"), ffn_dim=c.get_int("ffn_dim"),
                    vocab=c.get_int("vocab_size"), position="learned", **gpt_common)
    d = c.get_int("hidden_size", "n_embed")  # bloom
    heads = c.get_int("n_head", "num_attention_heads")
    return dict(layers=c.get_int("n_layer", "num_hidden_layers"), d_model=d, heads=heads, kv_heads=heads,
                ffn_dim=4 * d, vocab=c.get_int("vocab_size"), position="alibi", **gpt_common)


def from_hf_config(path: str | Path) -> ModelSpec:
    """ModelSpec from a local Hugging Face ``config.json`` (or a folder holding one).

    Supported ``model_type``: see ``SUPPORTED_MODEL_TYPES``. Raw context length and any
    simplification are recorded in ``spec.notes``. Every error is one EstimatorInputError line.
    """
    data, p = _read_json(path)
    c = _Cfg(data, p)
    mt = data.get("model_type")
    if not isinstance(mt, str) or not mt:
        raise EstimatorInputError(f"{p.name} has no model_type",
                                  f"pass a Hugging Face config.json of one of: {', '.join(SUPPORTED_MODEL_TYPES)}")
    if mt not in SUPPORTED_MODEL_TYPES:
        raise EstimatorInputError(f"model_type {mt!r} in {p.name} is not supported",
                                  f"supported: {', '.join(SUPPORTED_MODEL_TYPES)}; otherwise pass the shape by hand")
    notes: dict[str, Any] = {"hf_config": str(p), "model_type": mt}
    if mt in _LLAMA_LIKE:
        kw = _llama_like(c, mt, notes)
    elif mt.startswith("deepseek"):
        kw = _deepseek(c, mt)
    else:
        kw = _gpt_like(c, mt, notes)
    if mt == "bloom" and c._pick(("max_position_embeddings", "n_positions", "seq_length")) is None:
        kw["seq_len"] = 2048  # BLOOM (ALiBi) configs carry no context; 2048 per BigScience 2022 Table 3
        notes["seq_len_note"] = "bloom config has no context length; 2048 from BigScience 2022 Table 3"
    else:
        kw["seq_len"] = _seq_len(c, notes, learned=kw.get("position") == "learned")
    name = data.get("_name_or_path") or (p.parent.name if p.name == "config.json" else p.stem)
    spec = ModelSpec(**kw, name=str(name), source=f"Hugging Face config.json ({p.name}, model_type {mt})",
                     notes=notes)
    return _normalise_head_dim(validate(spec))


# --- published training recipes of presets (tokens, batch) -----------------------------------


@cache
def _training_recipes() -> dict[str, dict]:
    """hardware_db/model_training.csv: published training tokens and global batch per preset, with sources."""
    import csv

    text = files("hardware_db").joinpath("model_training.csv").read_text(encoding="utf-8")
    out: dict[str, dict] = {}
    for row in csv.DictReader(io.StringIO(text)):
        key = row["preset"].strip().lower()
        if key not in _presets():
            raise ValueError(f"hardware_db/model_training.csv: unknown preset {key!r}")
        if not row["source"].strip():
            raise ValueError(f"hardware_db/model_training.csv: {key} has no source")
        rec: dict[str, Any] = {"source": f"{row['source'].strip()} ({row['source_location'].strip()})"}
        for col in ("training_tokens", "global_batch_tokens"):
            v = row[col].strip()
            rec[col] = float(v) if v else None
            if rec[col] is not None and not rec[col] > 0:
                raise ValueError(f"hardware_db/model_training.csv: {key}.{col} must be positive")
        out[key] = rec
    return out


def training_recipe(name: str) -> dict | None:
    """Published training tokens and global batch of a preset, or None when not published."""
    return _training_recipes().get(str(name).strip().lower())


@cache
def _training_clusters() -> dict[str, dict]:
    """hardware_db/preset_training_clusters.csv: the accelerator and count a preset was trained on, where published."""
    import csv

    text = files("hardware_db").joinpath("preset_training_clusters.csv").read_text(encoding="utf-8")
    out: dict[str, dict] = {}
    for row in csv.DictReader(io.StringIO(text)):
        key = row["preset"].strip().lower()
        where = f"hardware_db/preset_training_clusters.csv row {key!r}"
        if key not in _presets() or key in out:
            raise ValueError(f"{where}: unknown or repeated preset")
        count = int(row["accelerator_count"])
        if count < 1 or row["count_kind"] not in ("exact", "up_to", "typical") or not row["source"].strip():
            raise ValueError(f"{where}: needs a positive count, count_kind exact|up_to|typical and a source")
        out[key] = {"accelerator": row["accelerator"].strip(), "count": count, "kind": row["count_kind"],
                    "source": f"{row['source'].strip()} ({row['source_location'].strip()})"}
    return out


def training_cluster(name: str) -> dict | None:
    """The published training cluster of a preset (accelerator, count, kind, source), or None."""
    return _training_clusters().get(str(name).strip().lower())

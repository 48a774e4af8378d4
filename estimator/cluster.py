"""The default cluster and global batch of a training run, when the user gives neither.

A preset's published training cluster is used where it ran on the same accelerator
(hardware_db/preset_training_clusters.csv); otherwise the cluster is sized to finish in about
``target_days`` at 40% MFU, and the user is told that real runs of small models use many more GPUs.
"""

from __future__ import annotations

import math

from estimator.assumptions import Assumptions, one
from estimator.flops import training_flops


def _choose_gpus(total_flops: float, peak: float, target_days: float) -> int:
    """Enough GPUs to finish in about ``target_days`` at 40% of peak, rounded to a multiple of 8 (or 1024)."""
    gpu_s = total_flops / (0.4 * peak)
    n = gpu_s / (target_days * 86400)
    step = 1024 if n > 4096 else 8
    return int(max(8, math.ceil(n / step) * step))


def default_global_batch_tokens(n_params: float) -> float:
    """4M tokens (Llama 2, Touvron et al. 2023 Sec 2.2) below 100B parameters; 16M (Llama 3.1 405B, Dubey et al. 2024 Sec 3.4.1) from 100B."""  # noqa: E501
    return 16 * 2**20 if n_params >= 1e11 else 4 * 2**20


def cluster_size(cfg, r) -> tuple[int, Assumptions, list[str]]:
    """The user's GPU count; else the preset's published cluster when it ran on this accelerator; else enough for
    about ``target_days`` at 40% MFU, capped at 8 GPUs per sequence."""
    if cfg.gpus is not None:
        return cfg.gpus, Assumptions(), []
    from estimator.presets import training_cluster

    pub = training_cluster(r.spec.name)
    if pub is not None and pub["accelerator"] == r.accel.id:
        kind = {"up_to": "up to ", "typical": "typically "}.get(pub["kind"], "")
        return pub["count"], one("gpus", pub["count"], "GPU", f"published: {r.spec.name} was trained on {kind}"
                                 f"{pub['count']:,} {r.accel.id}, {pub['source']} (pass --gpus)"), []
    n = _choose_gpus(training_flops(r.spec, r.tokens, "none").model_flops, r.peak, cfg.target_days)
    cap = max(8, r.gb_seqs * 8)  # Llama 3.1 405B: 16,384 GPUs for 2,048 sequences per batch (Dubey et al. Table 4)
    src = (f"default: enough {r.accel.id} to finish in about {cfg.target_days:g} days at 40% MFU, rounded up"
           + (f", capped at 8 GPUs per sequence of the global batch ({r.gb_seqs})" if n > cap else "")
           + " (pass --gpus)")
    note = (f"GPU count not given: {min(n, cap):,} {r.accel.id}, enough for about {cfg.target_days:g} days; the "
            "efficiency per GPU depends on the count, and real runs of small models use far more GPUs for less time "
            "(Llama 3 8B in benchmarks/REPORT.md) - pass --gpus for your cluster")
    if pub is not None:
        note += f"; {r.spec.name} was trained on {pub['count']:,} {pub['accelerator']} ({pub['source']})"
    return min(n, cap), one("gpus", min(n, cap), "GPU", src), [note]

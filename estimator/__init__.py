"""The analytic cost model: training, serving and budget planning, without torch or pynvml.

    from estimator import estimate_training, estimate_inference, plan, TrainingConfig, ModelSpec

Every public name is imported here for real, so type checkers and IDEs see its signature.
"""

from __future__ import annotations

from estimator.calibration import load_calibration
from estimator.config import PlanConfig, ServingConfig, TrainingConfig
from estimator.errors import EstimatorInputError
from estimator.inference import compare_models, estimate_inference
from estimator.model import ModelSpec, param_count
from estimator.planning import PlanResult, plan
from estimator.presets import from_hf_config, load_preset
from estimator.results import METRICS, InferenceEstimate, TrainingEstimate
from estimator.training import estimate_training

__all__ = ["METRICS", "EstimatorInputError", "InferenceEstimate", "ModelSpec", "PlanConfig", "PlanResult",
           "ServingConfig", "TrainingConfig", "TrainingEstimate", "compare_models", "estimate_inference",
           "estimate_training", "from_hf_config", "load_calibration", "load_preset", "param_count", "plan"]

"""The model zoo: an explicit name -> :class:`ModelSpec` table.

Every buildable model is listed in :data:`MODELS`; nothing registers itself on import. The names (aliases
included) are those of :data:`models.config.MODEL_CONFIGS`; each gets the spec of its config class.
``build_fn(model_cfg, num_classes, input_cfg) -> keras.Model``; video-level models also provide
``head_fn(model_cfg, num_classes) -> keras.layers.Layer`` so frame-level models can use them as
their classifier (``DbofConfig.video_level_model``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

import keras

from models import frame_level, video_level
from models.config import (
    MODEL_CONFIGS,
    DbofConfig,
    ExperimentConfig,
    FrameLevelLogisticConfig,
    InputConfig,
    LogisticConfig,
    ModelConfig,
    MoeConfig,
    RnnConfig,
)


@dataclass(frozen=True)
class ModelSpec:
    build_fn: Callable[[ModelConfig, int, InputConfig], keras.Model]
    config_cls: type[ModelConfig]
    level: str
    description: str = ""
    head_fn: Callable[[ModelConfig, int], keras.layers.Layer] | None = None


def make_head(name: str, head_cfg: ModelConfig, num_classes: int) -> keras.layers.Layer:
    """The classifier layer [B, D] -> [B, C] of the video-level model ``name``."""
    spec = get(name)
    if spec.head_fn is None:
        heads = sorted(n for n, s in MODELS.items() if s.head_fn is not None)
        raise ValueError(f"{name!r} cannot serve as a video-level head; choose one of {heads}")
    if not isinstance(head_cfg, spec.config_cls):
        raise TypeError(f"head {name!r} needs a {spec.config_cls.__name__}, got {type(head_cfg).__name__}")
    return spec.head_fn(head_cfg, num_classes)


def _build_dbof(cfg: DbofConfig, num_classes: int, input_cfg: InputConfig) -> keras.Model:
    head = make_head(cfg.video_level_model, cfg.video_level, num_classes)
    return frame_level.build_dbof(cfg, num_classes, input_cfg, head)


def _build_rnn(cfg: RnnConfig, num_classes: int, input_cfg: InputConfig) -> keras.Model:
    head = make_head(cfg.video_level_model, cfg.video_level, num_classes)
    return frame_level.build_rnn(cfg, num_classes, input_cfg, head)


_SPECS = [
    ModelSpec(video_level.build_logistic, LogisticConfig, "video", "logistic regression on mean features",
              head_fn=video_level.logistic_head),
    ModelSpec(video_level.build_moe, MoeConfig, "video", "mixture of logistic experts on mean features",
              head_fn=video_level.moe_head),
    ModelSpec(frame_level.build_frame_logistic, FrameLevelLogisticConfig, "frame",
              "logistic regression on the mean of the true frames"),
    ModelSpec(_build_dbof, DbofConfig, "frame", "deep bag of frames -> video-level head"),
    ModelSpec(_build_rnn, RnnConfig, "frame", "stacked LSTM/GRU over frames -> video-level head"),
]
_SPEC_OF_CONFIG = {spec.config_cls: spec for spec in _SPECS}

MODELS: dict[str, ModelSpec] = {name: _SPEC_OF_CONFIG[config_cls] for name, config_cls in MODEL_CONFIGS.items()}
"""Model name (aliases included, as :data:`models.config.MODEL_CONFIGS` lists them) -> its spec."""


def get(name: str) -> ModelSpec:
    """The spec of ``name``; unknown names raise KeyError listing the known ones."""
    try:
        return MODELS[name]
    except KeyError:
        raise KeyError(f"unknown model {name!r}; known models: {', '.join(sorted(MODELS))}") from None


def default_config(model_name: str, **overrides) -> ExperimentConfig:
    """ExperimentConfig for ``model_name`` with its default model config and input level."""
    spec = get(model_name)
    cfg = ExperimentConfig(model_name=model_name, model=spec.config_cls(), **overrides)
    return dataclasses.replace(cfg, input=dataclasses.replace(cfg.input, level=spec.level))


def input_level(cfg: ExperimentConfig) -> str:
    """The level of ``cfg.model_name``; ValueError when ``cfg.input.level`` names the other one."""
    level = get(cfg.model_name).level
    if cfg.input.level not in (None, level):
        raise ValueError(f"model {cfg.model_name!r} is {level}-level but input.level is {cfg.input.level!r}")
    return level


def build_model(cfg: ExperimentConfig, num_classes: int | None = None) -> keras.Model:
    """Build ``cfg.model_name`` for ``num_classes`` (default ``cfg.num_classes``)."""
    spec = get(cfg.model_name)
    num_classes = num_classes if num_classes is not None else cfg.num_classes
    if not num_classes or num_classes < 1:
        raise ValueError("num_classes is unset; resolve it from the data (vidpipe.label_stats.load_num_classes)")
    if not isinstance(cfg.model, spec.config_cls):
        raise TypeError(f"model {cfg.model_name!r} needs a {spec.config_cls.__name__}, "
                        f"got {type(cfg.model).__name__}")
    input_level(cfg)
    return spec.build_fn(cfg.model, num_classes, cfg.input)

"""Typed configs of the per-frame-feature models: segmentation taggers, clip classifiers, transcripts.

Imports no model code (only :mod:`models.config`'s base class), so the registry and CLIs can read
and validate these without TensorFlow.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from models.config import Config, ConfigError, ModelConfig


def _at_least(config: object, minimum: float, *names: str) -> None:
    for name in names:
        if getattr(config, name) < minimum:
            raise ConfigError(f"{type(config).__name__}.{name} must be >= {minimum}, got {getattr(config, name)}")


def _rate(config: object, *names: str) -> None:
    for name in names:
        if not 0.0 <= getattr(config, name) < 1.0:
            raise ConfigError(f"{type(config).__name__}.{name} must be in [0, 1), got {getattr(config, name)}")


@dataclass
class RnnTaggerConfig(ModelConfig):
    """Seed 000: stacked (bidirectional) GRU/LSTM over frame features -> per-frame logits [B, T, C].

    dropout: variational dropout on each layer's outputs (one mask per video, shared by all frames),
      the seed's DropoutWrapper(output_keep_prob, variational_recurrent=True).
    recurrent_dropout: variational dropout on the recurrent state (Keras' recurrent_dropout).
    init_scale: kernels drawn uniformly from [-init_scale, init_scale] (the seed's random_uniform 0.1);
      None keeps Keras' defaults (glorot / orthogonal).
    """

    cell: Literal["gru", "lstm"] = "gru"
    units: int = 256
    layers: int = 2
    bidirectional: bool = True
    dropout: float = 0.3
    recurrent_dropout: float = 0.0
    init_scale: float | None = 0.1

    def __post_init__(self) -> None:
        super().__post_init__()
        _at_least(self, 1, "units", "layers")
        _rate(self, "dropout", "recurrent_dropout")
        if self.init_scale is not None and self.init_scale <= 0:
            raise ConfigError(f"RnnTaggerConfig.init_scale must be > 0 or None, got {self.init_scale}")


@dataclass
class MsTcnConfig(ModelConfig):
    """MS-TCN: ``num_stages`` stages of ``num_layers`` dilated residual layers (dilation 2**i) -> [B, S, T, C].

    Loss per stage: masked cross-entropy + smoothing_weight * mean(min((Δ log-softmax)², smoothing_clamp²))
    over adjacent frames (MS-TCN's λ = 0.15, τ = 4).
    """

    num_stages: int = 4
    num_layers: int = 10
    num_filters: int = 64
    dropout: float = 0.5
    smoothing_weight: float = 0.15
    smoothing_clamp: float = 4.0

    def __post_init__(self) -> None:
        super().__post_init__()
        _at_least(self, 1, "num_stages", "num_layers", "num_filters")
        _rate(self, "dropout")
        _at_least(self, 0.0, "smoothing_weight")
        if self.smoothing_clamp <= 0:
            raise ConfigError(f"MsTcnConfig.smoothing_clamp must be > 0, got {self.smoothing_clamp}")


@dataclass
class ClipRnnConfig(ModelConfig):
    """Seed 001: stacked GRU/LSTM over frame features; the last true frame's output -> softmax logits [B, C]."""

    cell: Literal["gru", "lstm"] = "gru"
    units: int = 256
    layers: int = 2
    bidirectional: bool = False
    dropout: float = 0.0

    def __post_init__(self) -> None:
        super().__post_init__()
        _at_least(self, 1, "units", "layers")
        _rate(self, "dropout")


@dataclass
class ClipPoolingConfig(ModelConfig):
    """Baseline: mean and max over the true frames, concatenated [B, 2D] -> (hidden ReLU layer) -> logits [B, C].

    hidden_units 0 means a linear classifier on the pooled features.
    """

    hidden_units: int = 512
    dropout: float = 0.5

    def __post_init__(self) -> None:
        super().__post_init__()
        _at_least(self, 0, "hidden_units")
        _rate(self, "dropout")


@dataclass
class TranscriptConfig(ModelConfig):
    """Seed 003: GRU encoder over frame features, GRU decoder emitting the ordered actions, then an end token.

    input_pool_size: average the frames in windows of this size before the encoder (long videos).
    attention: "none" (the decoder starts from the encoder's final state only), "bahdanau" (additive score
      on the previous decoder state; the context is fed into the GRU) or "luong" (general score on the
      current decoder state; attentional output tanh(W[c; s]) feeds the softmax and the next step).
    beam_width: 1 decodes greedily; max_output_length bounds the decoded actions (end token excluded).
    length_penalty: beam hypotheses are ranked by log p / length**length_penalty (0: plain log p).
    """

    encoder_units: int = 128
    decoder_units: int = 128
    embedding_dim: int = 32
    bidirectional_encoder: bool = True
    input_pool_size: int = 1
    attention: Literal["none", "bahdanau", "luong"] = "bahdanau"
    attention_units: int = 64
    dropout: float = 0.2
    beam_width: int = 4
    max_output_length: int = 32
    length_penalty: float = 0.0

    def __post_init__(self) -> None:
        super().__post_init__()
        _at_least(self, 1, "encoder_units", "decoder_units", "embedding_dim", "input_pool_size", "attention_units",
                  "beam_width", "max_output_length")
        _rate(self, "dropout")
        _at_least(self, 0.0, "length_penalty")


@dataclass
class SegmentationTrainConfig(Config):
    """The seeds' optimisation: Adam, learning rate halved every ``decay_epochs`` epochs, global-norm clipping.

    lr = learning_rate * decay_rate ** floor(epoch / decay_epochs); clip_norm None disables clipping.
    """

    learning_rate: float = 1e-3
    decay_rate: float = 0.5
    decay_epochs: int = 10
    clip_norm: float | None = 1.0
    batch_size: int = 8
    epochs: int = 50
    seed: int = 42

    def __post_init__(self) -> None:
        super().__post_init__()
        _at_least(self, 1, "decay_epochs", "batch_size", "epochs")
        if self.learning_rate <= 0 or not 0 < self.decay_rate <= 1:
            raise ConfigError("SegmentationTrainConfig: learning_rate must be > 0 and decay_rate in (0, 1]")
        if self.clip_norm is not None and self.clip_norm <= 0:
            raise ConfigError(f"SegmentationTrainConfig.clip_norm must be > 0 or None, got {self.clip_norm}")


SEGMENTATION_MODELS: dict[str, Callable[[], RnnTaggerConfig | MsTcnConfig]] = {
    "bigru": lambda: RnnTaggerConfig(cell="gru"),
    "bilstm": lambda: RnnTaggerConfig(cell="lstm"),
    "mstcn": MsTcnConfig,
}


def default_model_config(model_name: str) -> RnnTaggerConfig | MsTcnConfig:
    """The default config of a segmentation model name (a key of :data:`SEGMENTATION_MODELS`)."""
    if model_name not in SEGMENTATION_MODELS:
        raise ConfigError(f"unknown segmentation model {model_name!r}; known: {', '.join(SEGMENTATION_MODELS)}")
    return SEGMENTATION_MODELS[model_name]()

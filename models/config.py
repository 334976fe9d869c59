"""Typed experiment configuration: dataclasses with a JSON round trip and dotted overrides.

An :class:`ExperimentConfig` names a model (:data:`MODEL_CONFIGS`, the names of :mod:`models.registry`)
and carries that model's own config dataclass, the input pipeline config and the training config::

    >>> from models.config import DbofConfig, ExperimentConfig, apply_overrides
    >>> cfg = ExperimentConfig(model_name="dbof", model=DbofConfig(cluster_size=256))
    >>> cfg = apply_overrides(cfg, ["model.video_level.num_mixtures=4", "input.batch_size=64"])
    >>> cfg.model.cluster_size, cfg.model.video_level.num_mixtures, cfg.input.batch_size
    (256, 4, 64)
    >>> ExperimentConfig.from_dict(cfg.to_dict()) == cfg
    True

``cfg.save("config.json")`` and ``ExperimentConfig.load("config.json")`` make the same round trip through a file.

Numeric fields declare their allowed range with :func:`bounded`; a value outside it raises a one-line
ConfigError naming the dotted key, the range and the value (``train.max_steps must be >= 1, got -5``)
when the config is built, loaded or overridden, before any training starts.

Fields whose config class depends on a sibling name (``ExperimentConfig.model`` on ``model_name``,
``DbofConfig.video_level`` on ``video_level_model``) are declared with :func:`model_config_field`;
:meth:`Config.from_dict` looks the class up by that name in :data:`MODEL_CONFIGS`.
"""
from __future__ import annotations

import copy
import dataclasses
import json
import math
import types
import typing
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar, Union

ConfigT = TypeVar("ConfigT", bound="Config")

_CONFIG_FOR = "config_for"
_BOUNDS = "bounds"
MAX_NUM_CLASSES = 2**31 - 1  # class ids are int32 inside the models


class ConfigError(ValueError):
    """A config value or key that does not fit the schema."""


class _OutOfRange(ConfigError):
    """A field's value outside its bounds; Config.from_dict re-raises it under the field's dotted key."""

    def __init__(self, name: str, requirement: str, prefix: str):
        self.name = name
        self.requirement = requirement
        super().__init__(f"{prefix}{name} {requirement}")


@dataclass(frozen=True)
class Bounds:
    """An allowed numeric range: lower and/or upper limit, each inclusive or exclusive."""

    low: float | None = None
    low_inclusive: bool = True
    high: float | None = None
    high_inclusive: bool = True

    def describe(self) -> str:
        if self.low is not None and self.high is not None:
            return (f"in {'[' if self.low_inclusive else '('}{self.low}, "
                    f"{self.high}{']' if self.high_inclusive else ')'}")
        if self.low is not None:
            return f"{'>=' if self.low_inclusive else '>'} {self.low}"
        return f"{'<=' if self.high_inclusive else '<'} {self.high}"

    def problem(self, value: Any) -> str | None:
        """None when ``value`` is a finite number in range, else "must be ..., got ..."."""
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return f"must be a number {self.describe()}, got {value!r}"
        fits = math.isfinite(value)
        if fits and self.low is not None:
            fits = value >= self.low if self.low_inclusive else value > self.low
        if fits and self.high is not None:
            fits = value <= self.high if self.high_inclusive else value < self.high
        return None if fits else f"must be {self.describe()}, got {value!r}"


def bounded(default: Any, *, ge: float | None = None, gt: float | None = None, le: float | None = None,
            lt: float | None = None) -> Any:
    """A numeric field with its allowed range (None values of Optional fields are not checked)."""
    if ge is not None and gt is not None or le is not None and lt is not None:
        raise TypeError("give at most one lower (ge/gt) and one upper (le/lt) bound")
    bounds = Bounds(low=ge if gt is None else gt, low_inclusive=gt is None,
                    high=le if lt is None else lt, high_inclusive=lt is None)
    return field(default=default, metadata={_BOUNDS: bounds})


def model_config_field(name_field: str, default_factory) -> Any:
    """A field holding the config of the model named by the sibling field ``name_field``."""
    return field(default_factory=default_factory, metadata={_CONFIG_FOR: name_field})


def _model_config_class(model_name: str) -> type:
    """The config dataclass of the model ``model_name`` (see :data:`MODEL_CONFIGS`)."""
    try:
        return MODEL_CONFIGS[model_name]
    except KeyError:
        raise ConfigError(f"unknown model {model_name!r}; known models: {', '.join(sorted(MODEL_CONFIGS))}") from None


def _is_none(value: Any) -> bool:
    return value is None or (isinstance(value, str) and value.strip().lower() in ("none", "null"))


def _coerce_union(tp: Any, value: Any, path: str) -> Any:
    """Optional[X] / X | Y: None where allowed, else the first arm that accepts ``value``."""
    args = typing.get_args(tp)
    arms = [arm for arm in args if arm is not type(None)]
    if _is_none(value):
        if len(arms) < len(args):
            return None
        raise ConfigError(f"{path}: None is not allowed")
    errors = []
    for arm in arms:
        try:
            return _coerce(arm, value, path)
        except ConfigError as err:
            errors.append(str(err))
    raise ConfigError("; ".join(errors))


def _coerce_literal(tp: Any, value: Any, path: str) -> Any:
    if value not in typing.get_args(tp):
        raise ConfigError(f"{path}: {value!r} is not one of {list(typing.get_args(tp))}")
    return value


def _coerce_tuple(tp: Any, value: Any, path: str) -> tuple:
    """A list, a JSON list string ("[1, 2]") or a comma-separated string ("rgb,audio") -> tuple."""
    if isinstance(value, str):
        text = value.strip()
        items = json.loads(text) if text.startswith("[") else [v.strip() for v in text.split(",") if v.strip()]
    elif isinstance(value, (list, tuple)):
        items = list(value)
    else:
        raise ConfigError(f"{path}: expected a list, got {value!r}")
    args = typing.get_args(tp)
    item_type = args[0] if args else Any
    return tuple(_coerce(item_type, item, f"{path}[{i}]") for i, item in enumerate(items))


def _coerce_dataclass(tp: Any, value: Any, path: str) -> Any:
    if isinstance(value, tp):
        return value
    if not isinstance(value, dict):
        raise ConfigError(f"{path}: expected a mapping for {tp.__name__}, got {value!r}")
    return tp.from_dict(value, _path=path)


def _coerce_bool(tp: Any, value: Any, path: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in ("true", "1", "yes", "on"):
        return True
    if isinstance(value, str) and value.strip().lower() in ("false", "0", "no", "off"):
        return False
    raise ConfigError(f"{path}: expected a bool (true/false), got {value!r}")


def _coerce_int(tp: Any, value: Any, path: str) -> int:
    """An int, an integral float, or a string of one ("1_000", "1e3")."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        try:
            number = float(value.replace("_", ""))
        except ValueError:
            number = math.nan
        if number.is_integer():
            return int(number)
    raise ConfigError(f"{path}: expected an int, got {value!r}")


def _coerce_float(tp: Any, value: Any, path: str) -> float:
    if isinstance(value, bool):
        raise ConfigError(f"{path}: expected a float, got {value!r}")
    try:
        return float(value.replace("_", "") if isinstance(value, str) else value)
    except (TypeError, ValueError):
        raise ConfigError(f"{path}: expected a float, got {value!r}") from None


def _coerce_str(tp: Any, value: Any, path: str) -> str:
    if not isinstance(value, str):
        raise ConfigError(f"{path}: expected a string, got {value!r}")
    return value


def _keep(tp: Any, value: Any, path: str) -> Any:
    return value


_COERCERS_BY_ORIGIN = {Union: _coerce_union, types.UnionType: _coerce_union, Literal: _coerce_literal,
                       tuple: _coerce_tuple}
_COERCERS_BY_TYPE = {bool: _coerce_bool, int: _coerce_int, float: _coerce_float, str: _coerce_str}


def _coercer(tp: Any):
    """The coercer of an annotation: by its generic origin, else dataclass, else by the plain type."""
    origin = typing.get_origin(tp)
    if origin is not None:
        return _COERCERS_BY_ORIGIN.get(origin, _keep)
    if dataclasses.is_dataclass(tp):
        return _coerce_dataclass
    return _COERCERS_BY_TYPE.get(tp, _keep)


def _coerce(tp: Any, value: Any, path: str) -> Any:
    """Convert ``value`` (JSON value or override string) to the annotated type ``tp``."""
    return _coercer(tp)(tp, value, path)


def _check_literal(tp: Any, value: Any, path: str) -> None:
    """ConfigError when ``value`` is not one of the values of a ``Literal`` (or ``Literal | None``) field."""
    origin = typing.get_origin(tp)
    if origin is Literal:
        _coerce_literal(tp, value, path)
    elif origin in (Union, types.UnionType) and value is not None:
        for arm in typing.get_args(tp):
            _check_literal(arm, value, path)


@dataclass
class Config:
    """Base of all configs: JSON round trip, checks of ``Literal`` and :func:`bounded` fields on construction.

    ``_section`` is the dotted prefix that out-of-range messages use for a directly constructed config;
    built from a dict (load, overrides), the messages name the exact dotted key.
    """

    _section = ""

    def __post_init__(self) -> None:
        hints = typing.get_type_hints(type(self))
        for f in dataclasses.fields(self):
            _check_literal(hints[f.name], getattr(self, f.name), f"{type(self).__name__}.{f.name}")
        self._check_bounds()

    def _check_bounds(self) -> None:
        prefix = f"{self._section}." if self._section else ""
        for f in dataclasses.fields(self):
            bounds = f.metadata.get(_BOUNDS)
            value = getattr(self, f.name)
            if bounds is not None and value is not None:
                problem = bounds.problem(value)
                if problem:
                    raise _OutOfRange(f.name, problem, prefix)

    def validate(self) -> None:
        """Check every bounded field again, nested configs included (for configs changed after construction)."""
        self._check_bounds()
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, Config):
                value.validate()

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict (tuples become lists)."""
        return json.loads(json.dumps(dataclasses.asdict(self)))

    @classmethod
    def from_dict(cls, data: dict[str, Any], _path: str = "") -> typing.Self:
        """Inverse of :meth:`to_dict`; missing keys take defaults, unknown keys raise ConfigError."""
        if not isinstance(data, dict):
            raise ConfigError(f"{_path or cls.__name__}: expected a mapping, got {data!r}")
        fields = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - set(fields))
        if unknown:
            raise ConfigError(
                f"{_path or cls.__name__}: unknown key(s) {unknown}; known keys: {sorted(fields)}")
        hints = typing.get_type_hints(cls)
        kwargs = {}
        for name, f in fields.items():
            path = f"{_path}.{name}" if _path else name
            name_field = f.metadata.get(_CONFIG_FOR)
            if name_field is not None:
                model_name = data.get(name_field, fields[name_field].default)
                config_cls = _model_config_class(_coerce(str, model_name, path))
                kwargs[name] = config_cls.from_dict(data.get(name, {}), _path=path)
            elif name in data:
                kwargs[name] = _coerce(hints[name], data[name], path)
        try:
            return cls(**kwargs)
        except _OutOfRange as err:
            raise ConfigError(f"{_path}.{err.name} {err.requirement}" if _path else
                              f"{err.name} {err.requirement}") from None
        except ConfigError:
            raise
        except (TypeError, ValueError) as err:
            raise ConfigError(f"{_path or cls.__name__}: {err}") from err

    def save(self, path: str) -> None:
        """Write as indented JSON (through tf.io.gfile, so gs:// paths work)."""
        import tensorflow as tf

        with tf.io.gfile.GFile(path, "w") as handle:
            handle.write(json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n")

    @classmethod
    def load(cls, path: str) -> typing.Self:
        import tensorflow as tf

        with tf.io.gfile.GFile(path) as handle:
            return cls.from_dict(json.load(handle))


@dataclass
class ModelConfig(Config):
    """Base of the per-model configs held in :data:`models.registry.MODELS`."""

    _section = "model"


@dataclass
class InputConfig(Config):
    """How records become batches.

    level: "frame" (SequenceExample) or "video" (Example); None takes the model's level.
    feature_names: per-frame stream names from :mod:`vidpipe.schema` ("rgb", "audio"); video-level
      models read their means ("mean_rgb", "mean_audio").
    sample_random_frames: at training time only, replace the frames of each video by
      ``num_sampled_frames`` frames drawn uniformly (with replacement) from its true frames.
    """

    _section = "input"

    level: Literal["frame", "video"] | None = None
    feature_names: tuple[str, ...] = ("rgb", "audio")
    max_frames: int = bounded(300, ge=1)
    batch_size: int = bounded(256, ge=1)
    shuffle_buffer: int = bounded(1024, ge=0)
    sample_random_frames: bool = False
    num_sampled_frames: int = bounded(30, ge=1)

    def __post_init__(self) -> None:
        super().__post_init__()
        from vidpipe import schema

        known = [spec.name for spec in schema.FEATURES]
        if not self.feature_names or any(name not in known for name in self.feature_names):
            raise ConfigError(f"InputConfig.feature_names: {list(self.feature_names)} "
                              f"must be a non-empty subset of {known}")


@dataclass
class TrainConfig(Config):
    """Optimisation: Adam with staircase exponential decay on examples seen, global-norm clipping.

    lr = base_learning_rate * learning_rate_decay ** floor(examples / learning_rate_decay_examples).
    The loss is label loss + regularization_penalty * sum of the models' L2 terms.
    clip_gradient_norm 0 turns clipping off. mixed_precision "auto" means mixed_float16 when a GPU is visible.
    deterministic: the same seed and data give the same batches in the same order (ordered tf.data
      pipeline, seeded shuffles, stateless frame sampling), so a CPU run is reproducible bit for bit;
      false lets tf.data hand out records as they are ready.
    op_determinism: also turn on TensorFlow's deterministic kernels (tf.config.experimental.
      enable_op_determinism), which GPU runs need to be bit-reproducible. It holds for the rest of the
      process and makes tf.data run its parse functions serially (they hold a stateful label check).
    """

    _section = "train"

    base_learning_rate: float = bounded(0.01, gt=0)
    learning_rate_decay: float = bounded(0.95, gt=0, le=1)
    learning_rate_decay_examples: int = bounded(4_000_000, ge=1)
    clip_gradient_norm: float = bounded(1.0, ge=0)
    regularization_penalty: float = bounded(1.0, ge=0)
    num_epochs: int = bounded(5, ge=1)
    max_steps: int | None = bounded(None, ge=1)
    checkpoint_every_steps: int = bounded(1000, ge=1)
    keep_checkpoints: int = bounded(3, ge=1)
    log_every_steps: int = bounded(50, ge=1)
    class_weighted_loss: bool = False
    class_weight_power: float = bounded(1.0, ge=0)
    mixed_precision: Literal["auto", "on", "off"] = "auto"
    seed: int = bounded(42, ge=0, le=2**32 - 1)
    deterministic: bool = True
    op_determinism: bool = False


@dataclass
class LogisticConfig(ModelConfig):
    """Video level: one sigmoid layer over the concatenated mean features."""

    l2_penalty: float = bounded(1e-8, ge=0)


@dataclass
class MoeConfig(ModelConfig):
    """Video level: per-class softmax gate over ``num_mixtures`` sigmoid experts plus a dummy expert."""

    num_mixtures: int = bounded(2, ge=1)
    l2_penalty: float = bounded(1e-6, ge=0)


@dataclass
class FrameLevelLogisticConfig(ModelConfig):
    """Frame level: mean over the true frames, then one sigmoid layer."""

    l2_penalty: float = bounded(1e-8, ge=0)


@dataclass
class DbofConfig(ModelConfig):
    """Frame level Deep Bag of Frames.

    sample_random_frames: during training only, the model itself draws ``num_sampled_frames``
      frames per video (the starter's ``iterations``); inference uses every true frame.
    video_level_model: a video-level registry name whose head classifies the pooled vector;
      ``video_level`` is that model's config.
    """

    cluster_size: int = bounded(8192, ge=1)
    hidden_size: int = bounded(1024, ge=1)
    add_batch_norm: bool = True
    sample_random_frames: bool = True
    num_sampled_frames: int = bounded(30, ge=1)
    pooling: Literal["max", "average"] = "max"
    video_level_model: str = "moe"
    video_level: ModelConfig = model_config_field("video_level_model", MoeConfig)


@dataclass
class RnnConfig(ModelConfig):
    """Frame level stacked LSTM/GRU masked by num_frames; the top layer's last output feeds the head."""

    cell: Literal["lstm", "gru"] = "lstm"
    units: int = bounded(1024, ge=1)
    layers: int = bounded(2, ge=1)
    bidirectional: bool = False
    video_level_model: str = "moe"
    video_level: ModelConfig = model_config_field("video_level_model", MoeConfig)


@dataclass
class ExperimentConfig(Config):
    """Everything one training run needs. num_classes None means "max_label + 1 of the data"."""

    model_name: str = "moe"
    model: ModelConfig = model_config_field("model_name", MoeConfig)
    input: InputConfig = field(default_factory=InputConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    num_classes: int | None = bounded(None, ge=1, le=MAX_NUM_CLASSES)


MODEL_CONFIGS: dict[str, type[ModelConfig]] = {
    "logistic": LogisticConfig,
    "moe": MoeConfig,
    "frame_logistic": FrameLevelLogisticConfig,
    "dbof": DbofConfig,
    "lstm": RnnConfig,
    "rnn": RnnConfig,
}
"""Model name -> its config dataclass, aliases included (vidpipe.layout MODEL_NAMES and MODEL_ALIASES);
:data:`models.registry.MODELS` builds each model from the config class listed here."""


def _paths_ending_with(data: dict[str, Any], name: str, prefix: str = "") -> list[str]:
    found = []
    for key, value in data.items():
        path = f"{prefix}{key}"
        if key == name:
            found.append(path)
        if isinstance(value, dict):
            found.extend(_paths_ending_with(value, name, f"{path}."))
    return found


def _set_dotted(data: dict[str, Any], key: str, value: str, root: Config) -> None:
    parts = key.split(".")
    node: Any = data
    config_node: Any = root
    for depth, part in enumerate(parts):
        prefix = ".".join(parts[:depth]) or "<root>"
        if not isinstance(node, dict) or part not in node:
            known = sorted(node) if isinstance(node, dict) else []
            elsewhere = _paths_ending_with(data, parts[-1])
            hint = f"; did you mean {' or '.join(elsewhere)}?" if elsewhere else ""
            raise ConfigError(
                f"unknown config key {key!r}: no {part!r} under {prefix}; known keys there: {known}{hint}")
        if depth == len(parts) - 1:
            if isinstance(node[part], dict):
                raise ConfigError(f"config key {key!r} is a section; set one of its keys: {sorted(node[part])}")
            dependent = [f.name for f in dataclasses.fields(config_node)
                         if f.metadata.get(_CONFIG_FOR) == part]
            if dependent and node[part] != value:
                new_cls = _model_config_class(value)
                for name in dependent:
                    if type(getattr(config_node, name)) is not new_cls:
                        node[name] = new_cls().to_dict()
            node[part] = value
            return
        node = node[part]
        config_node = getattr(config_node, part)


def apply_overrides(cfg: ConfigT, overrides: Sequence[str]) -> ConfigT:
    """Return a copy of ``cfg`` with ``"dotted.key=value"`` overrides applied in order.

    Values are coerced to the field's type ("64" -> 64, "true" -> True, "rgb,audio" -> tuple,
    "none" -> None). Changing a model name (``model_name=dbof``) resets the dependent model config
    to that model's defaults, so put it before the model's own keys. Unknown keys raise ConfigError.
    """
    result = copy.deepcopy(cfg)
    for override in overrides:
        key, sep, value = override.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"override {override!r} is not of the form dotted.key=value")
        data = result.to_dict()
        _set_dotted(data, key.strip(), value.strip(), result)
        result = type(result).from_dict(data)
    return result

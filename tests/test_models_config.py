"""Config dataclasses: JSON round trip, dotted overrides, registry lookups."""

import dataclasses
import json
from typing import Literal

import pytest

from models import registry
from models.config import (
    ConfigError,
    DbofConfig,
    ExperimentConfig,
    InputConfig,
    LogisticConfig,
    MoeConfig,
    RnnConfig,
    TrainConfig,
    apply_overrides,
)


@pytest.mark.parametrize("name", sorted(registry.MODELS))
def test_default_config_round_trips_for_every_model(name, tmp_path):
    cfg = registry.default_config(name)
    assert isinstance(cfg.model, registry.get(name).config_cls)
    assert cfg.input.level == registry.get(name).level
    assert ExperimentConfig.from_dict(cfg.to_dict()) == cfg
    path = tmp_path / "config.json"
    cfg.save(str(path))
    assert ExperimentConfig.load(str(path)) == cfg


def test_starter_defaults():
    train = TrainConfig()
    assert (train.base_learning_rate, train.learning_rate_decay, train.learning_rate_decay_examples) == (
        0.01, 0.95, 4_000_000)
    assert train.clip_gradient_norm == 1.0 and train.mixed_precision == "auto"
    assert InputConfig().max_frames == 300 and InputConfig().batch_size == 256
    assert MoeConfig() == MoeConfig(num_mixtures=2, l2_penalty=1e-6)
    assert LogisticConfig().l2_penalty == 1e-8
    dbof = DbofConfig()
    assert (dbof.cluster_size, dbof.hidden_size, dbof.pooling, dbof.video_level_model) == (8192, 1024, "max", "moe")
    assert RnnConfig().units == 1024 and RnnConfig().layers == 2


def test_overrides_coerce_types_and_leave_the_original_alone():
    base = registry.default_config("dbof")
    cfg = apply_overrides(base, [
        "model.cluster_size=64", "model.video_level.num_mixtures=4", "model.add_batch_norm=false",
        "model.pooling=average", "input.batch_size=64",
        "train.base_learning_rate=1e-3", "train.max_steps=10", "input.feature_names=rgb", "num_classes=7",
    ])
    assert cfg.model.cluster_size == 64 and cfg.model.video_level.num_mixtures == 4
    assert cfg.model.add_batch_norm is False and cfg.model.pooling == "average"
    assert cfg.input.batch_size == 64 and cfg.train.base_learning_rate == pytest.approx(1e-3)
    assert cfg.train.max_steps == 10 and cfg.input.feature_names == ("rgb",) and cfg.num_classes == 7
    assert base.model.cluster_size == 8192 and base.train.max_steps is None
    assert apply_overrides(cfg, ["train.max_steps=none"]).train.max_steps is None
    assert ExperimentConfig.from_dict(cfg.to_dict()) == cfg


def test_changing_the_model_name_resets_the_model_config():
    cfg = apply_overrides(registry.default_config("moe"), ["model_name=dbof", "model.hidden_size=32"])
    assert isinstance(cfg.model, DbofConfig) and cfg.model.hidden_size == 32
    head = apply_overrides(cfg, ["model.video_level_model=logistic", "model.video_level.l2_penalty=0.5"])
    assert head.model.video_level == LogisticConfig(l2_penalty=0.5)


@pytest.mark.parametrize("override, message", [
    ("model.num_mixture=4", "unknown config key 'model.num_mixture'"),
    ("trian.batch_size=3", "known keys there"),
    ("train.batch_size=64", "did you mean input.batch_size"),
    ("train.max_steps=many", "expected an int"),
    ("model.num_mixtures=2.5", "expected an int"),
    ("train.class_weighted_loss=maybe", "expected a bool"),
    ("train.mixed_precision=sometimes", "is not one of"),
    ("train=3", "is a section"),
    ("model_name=transformer", "unknown model 'transformer'"),
    ("no_equals_sign", "dotted.key=value"),
])
def test_bad_overrides_raise_clear_errors(override, message):
    with pytest.raises((ConfigError, KeyError), match=message):
        apply_overrides(registry.default_config("moe"), [override])


def test_from_dict_rejects_unknown_keys_and_bad_values():
    data = registry.default_config("moe").to_dict()
    data["input"]["frames"] = 3
    with pytest.raises(ConfigError, match=r"input: unknown key\(s\) \['frames'\]"):
        ExperimentConfig.from_dict(data)
    with pytest.raises(ConfigError, match="feature_names"):
        InputConfig(feature_names=("rgb", "depth"))
    with pytest.raises(ConfigError, match="pooling"):
        DbofConfig(pooling="median")


def test_registry_is_explicit_and_get_lists_known_names():
    assert {"logistic", "moe", "frame_logistic", "dbof", "rnn", "lstm"} <= set(registry.MODELS)
    with pytest.raises(KeyError, match="known models: .*dbof.*moe"):
        registry.get("nope")
    for spec in registry.MODELS.values():
        assert dataclasses.is_dataclass(spec.config_cls) and spec.level in ("frame", "video")
    with pytest.raises(ValueError, match="cannot serve as a video-level head"):
        registry.make_head("dbof", DbofConfig(), 4)


@pytest.mark.parametrize("override, message", [
    ("train.max_steps=-5", "train.max_steps must be >= 1, got -5"),
    ("train.max_steps=0", "train.max_steps must be >= 1, got 0"),
    ("train.checkpoint_every_steps=0", "train.checkpoint_every_steps must be >= 1, got 0"),
    ("train.log_every_steps=0", "train.log_every_steps must be >= 1, got 0"),
    ("train.keep_checkpoints=0", "train.keep_checkpoints must be >= 1, got 0"),
    ("train.num_epochs=0", "train.num_epochs must be >= 1, got 0"),
    ("train.base_learning_rate=0", "train.base_learning_rate must be > 0, got 0.0"),
    ("train.base_learning_rate=-0.1", "train.base_learning_rate must be > 0, got -0.1"),
    ("train.base_learning_rate=nan", "train.base_learning_rate must be > 0, got nan"),
    ("train.learning_rate_decay=0", "train.learning_rate_decay must be in (0, 1], got 0.0"),
    ("train.learning_rate_decay=1.5", "train.learning_rate_decay must be in (0, 1], got 1.5"),
    ("train.learning_rate_decay_examples=0", "train.learning_rate_decay_examples must be >= 1, got 0"),
    ("train.clip_gradient_norm=-1", "train.clip_gradient_norm must be >= 0, got -1.0"),
    ("train.clip_gradient_norm=inf", "train.clip_gradient_norm must be >= 0, got inf"),
    ("train.regularization_penalty=-1", "train.regularization_penalty must be >= 0, got -1.0"),
    ("train.class_weight_power=-0.5", "train.class_weight_power must be >= 0, got -0.5"),
    ("train.seed=-1", "train.seed must be in [0, 4294967295], got -1"),
    ("input.batch_size=0", "input.batch_size must be >= 1, got 0"),
    ("input.max_frames=-3", "input.max_frames must be >= 1, got -3"),
    ("input.num_sampled_frames=0", "input.num_sampled_frames must be >= 1, got 0"),
    ("input.shuffle_buffer=-1", "input.shuffle_buffer must be >= 0, got -1"),
    ("num_classes=0", "num_classes must be in [1, 2147483647], got 0"),
    ("num_classes=2147483648", "num_classes must be in [1, 2147483647], got 2147483648"),
    ("model.num_mixtures=0", "model.num_mixtures must be >= 1, got 0"),
    ("model.l2_penalty=-1e-6", "model.l2_penalty must be >= 0, got -1e-06"),
])
def test_out_of_range_values_name_the_key_and_the_range(override, message):
    with pytest.raises(ConfigError) as caught:
        apply_overrides(registry.default_config("moe"), [override])
    assert str(caught.value) == message


@pytest.mark.parametrize("name, override, message", [
    ("dbof", "model.cluster_size=0", "model.cluster_size must be >= 1, got 0"),
    ("dbof", "model.hidden_size=0", "model.hidden_size must be >= 1, got 0"),
    ("dbof", "model.num_sampled_frames=0", "model.num_sampled_frames must be >= 1, got 0"),
    ("dbof", "model.video_level.num_mixtures=0", "model.video_level.num_mixtures must be >= 1, got 0"),
    ("rnn", "model.units=0", "model.units must be >= 1, got 0"),
    ("rnn", "model.layers=0", "model.layers must be >= 1, got 0"),
    ("logistic", "model.l2_penalty=-1", "model.l2_penalty must be >= 0, got -1.0"),
])
def test_model_sizes_are_validated(name, override, message):
    with pytest.raises(ConfigError) as caught:
        apply_overrides(registry.default_config(name), [override])
    assert str(caught.value) == message


def test_boundary_values_are_accepted():
    cfg = apply_overrides(registry.default_config("moe"), [
        "train.max_steps=1", "train.checkpoint_every_steps=1", "train.learning_rate_decay=1", "train.seed=0",
        "train.clip_gradient_norm=0", "input.shuffle_buffer=0", "input.batch_size=1", "num_classes=1"])
    assert (cfg.train.max_steps, cfg.train.learning_rate_decay, cfg.num_classes) == (1, 1.0, 1)
    assert cfg.train.deterministic is True and cfg.train.op_determinism is False


def test_configs_built_directly_or_loaded_are_validated_too(tmp_path):
    with pytest.raises(ConfigError, match=r"^train\.max_steps must be >= 1, got -5$"):
        TrainConfig(max_steps=-5)
    with pytest.raises(ConfigError, match=r"^input\.batch_size must be >= 1, got 0$"):
        InputConfig(batch_size=0)
    with pytest.raises(ConfigError, match=r"^train\.base_learning_rate must be a number > 0, got '0.1'$"):
        TrainConfig(base_learning_rate="0.1")
    data = registry.default_config("moe").to_dict()
    data["train"]["checkpoint_every_steps"] = 0
    path = tmp_path / "config.json"
    path.write_text(json.dumps(data))
    with pytest.raises(ConfigError, match=r"^train\.checkpoint_every_steps must be >= 1, got 0$"):
        ExperimentConfig.load(str(path))
    changed = registry.default_config("moe")
    changed.train.max_steps = -5
    with pytest.raises(ConfigError, match=r"^train\.max_steps must be >= 1, got -5$"):
        changed.validate()


def test_model_configs_table_matches_the_registry_and_the_layout():
    from models.config import MODEL_CONFIGS
    from vidpipe import layout

    assert set(MODEL_CONFIGS) == set(registry.MODELS) == set(layout.MODEL_NAMES) | set(layout.MODEL_ALIASES)
    assert {name: spec.config_cls for name, spec in registry.MODELS.items()} == MODEL_CONFIGS
    assert MODEL_CONFIGS["rnn"] is MODEL_CONFIGS["lstm"] is RnnConfig


def test_config_imports_no_model_code():
    import ast
    import inspect

    from models import config

    imported = set()
    for node in ast.walk(ast.parse(inspect.getsource(config))):
        if isinstance(node, ast.ImportFrom):
            imported.add(node.module or "")
        elif isinstance(node, ast.Import):
            imported.update(alias.name for alias in node.names)
    assert not {name for name in imported if name.startswith("models")}, imported


def test_module_docstring_example_runs():
    import doctest

    from models import config

    result = doctest.testmod(config, verbose=False)
    assert result.attempted >= 5 and result.failed == 0


def test_the_old_docstring_override_names_the_right_section():
    with pytest.raises(ConfigError, match=r"did you mean input\.batch_size"):
        apply_overrides(registry.default_config("moe"), ["train.batch_size=64"])


@pytest.mark.parametrize("annotation, value, expected", [
    (int, "1_000", 1000), (int, 3.0, 3), (int, "1e3", 1000), (float, "2_5.5", 25.5), (bool, "off", False),
    (bool, 1, True), (str, "x", "x"), (tuple[int, ...], "[1, 2]", (1, 2)),
    (tuple[str, ...], " rgb, audio ", ("rgb", "audio")),
    (int | None, "null", None), (Literal["a", "b"], "b", "b"), (list[int], [1], [1]),
])
def test_coerce_dispatch_converts_each_kind(annotation, value, expected):
    from models.config import _coerce

    assert _coerce(annotation, value, "k") == expected


@pytest.mark.parametrize("annotation, value, message", [
    (int, True, "k: expected an int, got True"), (int, "1.5", "k: expected an int, got '1.5'"),
    (float, False, "k: expected a float, got False"), (bool, 2, "k: expected a bool"), (str, 3, "k: expected a string"),
    (int, None, "k: expected an int, got None"), (tuple[int, ...], 3, "k: expected a list, got 3"),
    (Literal["a"], "c", r"k: 'c' is not one of \['a'\]"), (int | float, None, "k: None is not allowed"),
    (MoeConfig, 3, "k: expected a mapping for MoeConfig"),
])
def test_coerce_dispatch_rejects_with_the_key(annotation, value, message):
    from models.config import _coerce

    with pytest.raises(ConfigError, match=message):
        _coerce(annotation, value, "k")

"""Every registered model: shapes, masking of padded frames, MoE arithmetic, and that it learns."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from models import inputs, losses, registry, synthetic, train
from models.config import apply_overrides
from models.features import model_inputs
from models.video_level import MoeHead
from vidpipe import layout

NUM_CLASSES = 6


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("zoo")
    synthetic.write_synthetic_data(str(root), num_videos=48, num_classes=NUM_CLASSES, num_files=2,
                                   min_frames=3, max_frames=12, seed=7)
    return str(root)


@pytest.fixture(autouse=True)
def seeded():
    """Every test starts from the same weights and random draws, so its outcome is fixed."""
    keras.utils.set_random_seed(0)


def tiny_config(name, *extra):
    overrides = synthetic.TINY_MODEL_OVERRIDES.get(name, []) + [
        "input.max_frames=8", "input.batch_size=48", f"num_classes={NUM_CLASSES}", *extra]
    return apply_overrides(registry.default_config(name), overrides)


def first_batch(cfg, data_dir, training=False):
    pattern = layout.record_pattern(data_dir, cfg.input.level)
    features, labels = next(iter(inputs.make_dataset(pattern, cfg.input, NUM_CLASSES, training=training, seed=0)))
    return model_inputs(features, cfg.input.level, cfg.input.feature_names), labels


@pytest.mark.parametrize("name", sorted(registry.MODELS))
def test_output_is_probabilities_per_class(name, data_dir):
    cfg = tiny_config(name)
    model = registry.build_model(cfg)
    batch, _ = first_batch(cfg, data_dir)
    for training in (True, False):
        probabilities = model(batch, training=training).numpy()
        assert probabilities.shape == (48, NUM_CLASSES) and probabilities.dtype == np.float32
        assert np.all(probabilities >= 0) and np.all(probabilities <= 1)


@pytest.mark.parametrize("name", sorted(n for n, s in registry.MODELS.items() if s.level == "frame"))
def test_frame_models_ignore_padded_frames(name, data_dir):
    cfg = tiny_config(name)
    model = registry.build_model(cfg)
    batch, _ = first_batch(cfg, data_dir)
    assert int(tf.reduce_min(batch["num_frames"])) < 8
    noisy = dict(batch)
    for key in cfg.input.feature_names:
        padding = ~tf.sequence_mask(batch["num_frames"], 8)[..., None]
        noise = tf.random.normal(tf.shape(batch[key]), stddev=3.0)
        noisy[key] = tf.where(padding, noise, batch[key])
    np.testing.assert_allclose(model(batch, training=False), model(noisy, training=False), atol=1e-5)


def test_moe_head_matches_the_mixture_formula():
    head = MoeHead(num_classes=3, num_mixtures=2, l2_penalty=0.0)
    x = np.random.default_rng(0).normal(size=(4, 5)).astype(np.float32)
    result = head(x).numpy()
    gates = (x @ head.gates.kernel.numpy()).reshape(4, 3, 3)
    gates = np.exp(gates) / np.exp(gates).sum(-1, keepdims=True)
    experts = 1 / (1 + np.exp(-(x @ head.experts.kernel.numpy() + head.experts.bias.numpy()).reshape(4, 3, 2)))
    np.testing.assert_allclose(result, (gates[..., :2] * experts).sum(-1), rtol=1e-5)
    assert np.all(result < 1.0)


@pytest.mark.parametrize("name", sorted(registry.MODELS))
def test_a_few_training_steps_lower_the_loss(name, data_dir):
    cfg = tiny_config(name, "train.base_learning_rate=0.01")
    cfg = train.resolve_config(cfg, data_dir)
    model = registry.build_model(cfg)
    optimizer = train.make_optimizer(cfg, mixed=False)
    step = train.make_train_step(model, optimizer, losses.CrossEntropyLoss(), cfg)
    batch, labels = first_batch(cfg, data_dir, training=True)
    history = [float(step(batch, labels)[0]) for _ in range(25)]
    assert np.all(np.isfinite(history)) and np.mean(history[-3:]) < 0.5 * history[0], history
    keras.utils.set_random_seed(0)
    again = registry.build_model(cfg)
    again_step = train.make_train_step(again, train.make_optimizer(cfg, mixed=False), losses.CrossEntropyLoss(), cfg)
    assert [float(again_step(batch, labels)[0]) for _ in range(3)] == history[:3]


@pytest.mark.parametrize("name", ["moe", "dbof"])
def test_mixed_precision_keeps_float32_probabilities(name, data_dir):
    cfg = tiny_config(name)
    with train.precision_policy(True):
        model = registry.build_model(cfg)
        batch, _ = first_batch(cfg, data_dir)
        probabilities = model(batch, training=False)
    assert probabilities.dtype == tf.float32
    assert model.get_layer("moe_head").compute_dtype == "float32"
    if name == "dbof":
        assert model.get_layer("cluster").compute_dtype == "float16"

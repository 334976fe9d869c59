"""Segmentation taggers (BiGRU/LSTM, MS-TCN) and clip classifiers: configs, losses, shapes, masking, learning."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from models.clip_classifier import build_clip_classifier, build_clip_pooling, build_clip_rnn, clip_classification_loss
from models.config import ConfigError
from models.segmentation import (
    FEATURES,
    IGNORE_LABEL,
    MASK,
    MaskedFrameAccuracy,
    build_mstcn,
    build_rnn_tagger,
    build_segmentation_model,
    masked_sparse_cross_entropy,
    mstcn_loss,
    pad_videos,
    predict_frame_labels,
    segmentation_loss,
    truncated_smoothing_loss,
)
from models.segmentation_config import (
    ClipPoolingConfig,
    ClipRnnConfig,
    MsTcnConfig,
    RnnTaggerConfig,
    SegmentationTrainConfig,
    TranscriptConfig,
)

FEATURE_DIM = 6
NUM_CLASSES = 3
MEANS = np.random.default_rng(99).normal(size=(NUM_CLASSES, FEATURE_DIM))


def toy_segmentation(num_videos: int, seed: int):
    """Videos of 40-80 frames, each class once in random order; frames = class mean + unit noise."""
    rng = np.random.default_rng(seed)
    features, labels = [], []
    for _ in range(num_videos):
        length = int(rng.integers(40, 80))
        cuts = np.sort(rng.choice(np.arange(8, length - 8), NUM_CLASSES - 1, replace=False))
        video_labels = np.repeat(rng.permutation(NUM_CLASSES), np.diff([0, *cuts, length]))
        features.append((MEANS[video_labels] + rng.normal(size=(length, FEATURE_DIM))).astype(np.float32))
        labels.append(video_labels)
    return features, labels


def nearest_mean_accuracy(features, labels) -> float:
    """Frame accuracy of the true class means (the best any per-frame rule can do here, roughly)."""
    guesses = [np.argmin(((video[:, None] - MEANS[None]) ** 2).sum(-1), axis=1) for video in features]
    return float(np.mean(np.concatenate([g == y for g, y in zip(guesses, labels)])))


def test_configs_validate_and_round_trip():
    cfg = MsTcnConfig(num_stages=2, num_layers=3)
    assert MsTcnConfig.from_dict(cfg.to_dict()) == cfg
    assert TranscriptConfig.from_dict({"attention": "luong", "beam_width": "3"}).beam_width == 3
    assert SegmentationTrainConfig().clip_norm == 1.0
    with pytest.raises(ConfigError, match="RnnTaggerConfig.dropout must be in"):
        RnnTaggerConfig(dropout=1.0)
    with pytest.raises(ConfigError, match="not one of"):
        TranscriptConfig(attention="dot")
    with pytest.raises(ConfigError, match="MsTcnConfig.num_stages must be >= 1"):
        MsTcnConfig(num_stages=0)


def test_pad_videos():
    inputs, labels = pad_videos([np.ones((3, 2)), 2 * np.ones((1, 2))], [np.array([0, 1, 1]), np.array([2])])
    assert inputs[FEATURES].shape == (2, 3, 2)
    np.testing.assert_array_equal(inputs[MASK], [[1, 1, 1], [1, 0, 0]])
    np.testing.assert_array_equal(inputs[FEATURES][1, :, 0], [2, 0, 0])
    np.testing.assert_array_equal(labels, [[0, 1, 1], [2, IGNORE_LABEL, IGNORE_LABEL]])
    with pytest.raises(ValueError, match="video 0: 3 feature frames but 2 labels"):
        pad_videos([np.ones((3, 2))], [np.array([0, 1])])


def test_masked_cross_entropy_skips_padded_frames():
    logits = np.zeros((1, 3, 2), np.float32)
    logits[0, 2] = [100.0, -100.0]
    labels = np.array([[0, 1, IGNORE_LABEL]])
    assert float(masked_sparse_cross_entropy(labels, logits)) == pytest.approx(np.log(2), rel=1e-6)
    assert float(masked_sparse_cross_entropy(np.array([[0, 1, 1]]), logits, mask=np.array([[1, 1, 0]]))) == \
        pytest.approx(np.log(2), rel=1e-6)


def test_truncated_smoothing_loss_by_hand():
    logits = np.array([[[0.0, 0.0], [np.log(3.0), 0.0], [50.0, -50.0]]], np.float32)
    valid = np.array([[1.0, 1.0, 0.0]], np.float32)
    # log-softmax: frame 0 (log .5, log .5), frame 1 (log .75, log .25); one valid pair, two classes
    expected = ((np.log(0.75) - np.log(0.5)) ** 2 + (np.log(0.25) - np.log(0.5)) ** 2) / 2
    assert float(truncated_smoothing_loss(logits, valid, clamp=4.0)) == pytest.approx(expected, rel=1e-5)
    # frames 1 -> 2 differ by ~100 in log-probability: each squared difference is clamped at 16
    all_valid = np.ones((1, 3), np.float32)
    clamped = (2 * expected + np.log(0.75) ** 2 + 16.0) / 4
    assert float(truncated_smoothing_loss(logits, all_valid, clamp=4.0)) == pytest.approx(clamped, rel=1e-4)


def test_smoothing_gradient_does_not_flow_into_the_previous_frame():
    logits = tf.Variable(np.random.default_rng(0).normal(size=(1, 2, 3)).astype(np.float32))
    with tf.GradientTape() as tape:
        loss = truncated_smoothing_loss(logits, tf.ones((1, 2)))
    gradient = tape.gradient(loss, logits).numpy()
    np.testing.assert_array_equal(gradient[0, 0], 0.0)
    assert np.abs(gradient[0, 1]).sum() > 0


def test_mstcn_loss_sums_stages():
    rng = np.random.default_rng(1)
    stage = rng.normal(size=(2, 1, 5, 3)).astype(np.float32)
    labels = np.array([[0, 1, 2, 2, IGNORE_LABEL], [1, 1, 0, IGNORE_LABEL, IGNORE_LABEL]])
    valid = (labels >= 0).astype(np.float32)
    single = float(masked_sparse_cross_entropy(labels, stage[:, 0])) + \
        0.15 * float(truncated_smoothing_loss(stage[:, 0], valid, 4.0))
    assert float(mstcn_loss(labels, stage)) == pytest.approx(single, rel=1e-5)
    assert float(mstcn_loss(labels, np.concatenate([stage, stage], axis=1))) == pytest.approx(2 * single, rel=1e-5)
    assert float(segmentation_loss(MsTcnConfig())(labels, stage)) == pytest.approx(single, rel=1e-5)


TAGGERS = [
    ("mstcn", MsTcnConfig(num_stages=2, num_layers=3, num_filters=8)),
    ("bigru", RnnTaggerConfig(cell="gru", units=8, layers=2)),
    ("lstm", RnnTaggerConfig(cell="lstm", units=8, layers=1, bidirectional=False, recurrent_dropout=0.1)),
]


@pytest.mark.parametrize("name,cfg", TAGGERS, ids=[name for name, _ in TAGGERS])
def test_tagger_shapes_and_padding_does_not_change_true_frames(name, cfg):
    keras.utils.set_random_seed(0)
    model = build_segmentation_model(cfg, FEATURE_DIM, NUM_CLASSES)
    features, _ = toy_segmentation(2, seed=5)
    batch, _ = pad_videos(features)
    outputs = np.asarray(model(batch, training=False))
    longest = batch[FEATURES].shape[1]
    expected = (2, cfg.num_stages, longest, NUM_CLASSES) if name == "mstcn" else (2, longest, NUM_CLASSES)
    assert outputs.shape == expected
    for index, video in enumerate(features):
        alone = np.asarray(model(pad_videos([video])[0], training=False))
        in_batch = outputs[index, ..., : len(video), :]
        np.testing.assert_allclose(in_batch, alone[0], atol=1e-5)
        np.testing.assert_array_equal(outputs[index, ..., len(video):, :], 0.0)


@pytest.mark.parametrize("name,cfg", [
    ("mstcn", MsTcnConfig(num_stages=2, num_layers=4, num_filters=16, dropout=0.2)),
    ("bigru", RnnTaggerConfig(units=16, layers=1, dropout=0.1)),
], ids=["mstcn", "bigru"])
def test_tagger_learns_a_toy_segmentation_task(name, cfg):
    keras.utils.set_random_seed(0)
    features, labels = toy_segmentation(24, seed=0)
    test_features, test_labels = toy_segmentation(8, seed=1)
    inputs, targets = pad_videos(features, labels)
    model = build_segmentation_model(cfg, FEATURE_DIM, NUM_CLASSES)
    model.compile(keras.optimizers.Adam(1e-2), loss=segmentation_loss(cfg), metrics=[MaskedFrameAccuracy()],
                  jit_compile=False)
    history = model.fit(inputs, targets, batch_size=8, epochs=30, verbose=0)
    assert history.history["loss"][-1] < 0.5 * history.history["loss"][0]
    predicted = predict_frame_labels(model, test_features, batch_size=3)
    assert [len(p) for p in predicted] == [len(f) for f in test_features]
    accuracy = float(np.mean(np.concatenate([p == y for p, y in zip(predicted, test_labels)])))
    baseline = nearest_mean_accuracy(test_features, test_labels)
    assert accuracy > 0.9 and accuracy > baseline + 0.08, (accuracy, baseline)


def test_mstcn_saves_and_loads(tmp_path):
    keras.utils.set_random_seed(0)
    model = build_mstcn(MsTcnConfig(num_stages=2, num_layers=2, num_filters=4), FEATURE_DIM, NUM_CLASSES)
    batch, _ = pad_videos(toy_segmentation(2, seed=3)[0])
    path = str(tmp_path / "mstcn.keras")
    model.save(path)
    restored = keras.saving.load_model(path)
    np.testing.assert_allclose(np.asarray(restored(batch)), np.asarray(model(batch)), atol=1e-6)
    tagger = build_rnn_tagger(RnnTaggerConfig(units=4, layers=1), FEATURE_DIM, NUM_CLASSES)
    tagger.save(path)
    np.testing.assert_allclose(np.asarray(keras.saving.load_model(path)(batch)), np.asarray(tagger(batch)), atol=1e-6)


def toy_clips(num_videos: int, seed: int, num_classes: int = 4):
    """Clips of 10-30 frames; class k clips move from mean k to mean (k + 1) % C (order matters)."""
    rng = np.random.default_rng(seed)
    means = np.random.default_rng(7).normal(size=(num_classes, FEATURE_DIM))
    features, labels = [], []
    for index in range(num_videos):
        label = index % num_classes
        length = int(rng.integers(10, 30))
        half = length // 2
        frames = np.concatenate([np.repeat(means[label][None], half, 0),
                                 np.repeat(means[(label + 1) % num_classes][None], length - half, 0)])
        features.append((frames + 0.8 * rng.normal(size=frames.shape)).astype(np.float32))
        labels.append(label)
    return features, np.asarray(labels)


CLIP_MODELS = [
    ("gru", ClipRnnConfig(units=16, layers=2)),
    ("lstm", ClipRnnConfig(cell="lstm", units=16, layers=1, bidirectional=True, dropout=0.1)),
    ("pooling", ClipPoolingConfig(hidden_units=16, dropout=0.1)),
]


@pytest.mark.parametrize("name,cfg", CLIP_MODELS, ids=[name for name, _ in CLIP_MODELS])
def test_clip_classifier_padding_does_not_change_the_logits(name, cfg):
    keras.utils.set_random_seed(0)
    model = build_clip_classifier(cfg, FEATURE_DIM, 4)
    features, _ = toy_clips(3, seed=2)
    batch, _ = pad_videos(features)
    logits = np.asarray(model(batch, training=False))
    assert logits.shape == (3, 4)
    for index, video in enumerate(features):
        np.testing.assert_allclose(logits[index], np.asarray(model(pad_videos([video])[0]))[0], atol=1e-5)


@pytest.mark.parametrize("builder,cfg", [(build_clip_rnn, ClipRnnConfig(units=16, layers=1)),
                                         (build_clip_pooling, ClipPoolingConfig(hidden_units=16, dropout=0.0))],
                         ids=["gru", "pooling"])
def test_clip_classifier_learns_a_toy_task(builder, cfg):
    keras.utils.set_random_seed(0)
    features, labels = toy_clips(64, seed=0)
    test_features, test_labels = toy_clips(32, seed=1)
    model = builder(cfg, FEATURE_DIM, 4)
    model.compile(keras.optimizers.Adam(1e-2), loss=clip_classification_loss(), jit_compile=False)
    model.fit(pad_videos(features)[0], labels, batch_size=16, epochs=25, verbose=0)
    predicted = np.argmax(np.asarray(model(pad_videos(test_features)[0])), axis=1)
    assert np.mean(predicted == test_labels) >= 0.9


def test_plain_checkpoint_restores_every_mstcn_weight(tmp_path):
    """tf.train.Checkpoint follows attributes, not the lists MS-TCN keeps its stages and residual layers in."""
    cfg = MsTcnConfig(num_stages=2, num_layers=2, num_filters=4, dropout=0.0)
    trained = build_mstcn(cfg, FEATURE_DIM, NUM_CLASSES)
    path = tf.train.Checkpoint(model=trained).save(str(tmp_path / "ckpt"))
    restored = build_mstcn(cfg, FEATURE_DIM, NUM_CLASSES)
    tf.train.Checkpoint(model=restored).restore(path).assert_consumed()
    inputs, _ = pad_videos(toy_segmentation(2, seed=5)[0])
    assert len(restored.weights) == 24
    for before, after in zip(trained.weights, restored.weights):
        np.testing.assert_array_equal(before.numpy(), after.numpy())
    np.testing.assert_allclose(restored(inputs).numpy(), trained(inputs).numpy(), rtol=1e-6)

"""Training loop: resume, logs, export round trip, prediction."""

import glob
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from models import export, inputs, registry, serving, synthetic, train
from models.config import ExperimentConfig, apply_overrides
from models.features import model_inputs
from vidpipe import layout
from vidpipe.apps import train_cli

NUM_CLASSES = 5


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("train_data")
    return synthetic.write_synthetic_data(str(root), num_videos=40, num_classes=NUM_CLASSES, num_files=2,
                                          min_frames=3, max_frames=10, seed=3)


def small_config(name, *extra):
    overrides = synthetic.TINY_MODEL_OVERRIDES.get(name, []) + [
        "input.max_frames=8", "input.batch_size=16", "input.shuffle_buffer=64",
        "train.log_every_steps=1", "train.checkpoint_every_steps=2", *extra]
    return apply_overrides(registry.default_config(name), overrides)


def scalar_tags(log_dir):
    tags = set()
    for path in glob.glob(os.path.join(log_dir, "events.out.tfevents.*")):
        for raw in tf.data.TFRecordDataset(path):
            event = tf.compat.v1.Event.FromString(raw.numpy())
            tags.update(value.tag for value in event.summary.value)
    return tags


def test_interrupted_training_resumes_from_the_latest_checkpoint(data, tmp_path):
    train_dir = str(tmp_path / "run")
    cfg = small_config("moe", "train.max_steps=3")
    first = train.train(data.data_dir, train_dir, cfg, validation_dir=data.data_dir, progress=False)
    assert (first.start_step, first.step) == (0, 3)
    assert first.checkpoint_path.endswith("ckpt-3") and first.validation_loss is not None

    second = train.train(data.data_dir, train_dir, apply_overrides(cfg, ["train.max_steps=6"]), progress=False)
    assert (second.start_step, second.step) == (3, 6)
    assert second.checkpoint_path.endswith("ckpt-6") and np.isfinite(second.final_loss)

    saved = ExperimentConfig.load(os.path.join(train_dir, "config.json"))
    assert saved.num_classes == NUM_CLASSES and saved.input.level == "video" and saved.train.max_steps == 6
    assert {"loss", "total_loss", "learning_rate", "examples_per_second", "validation/loss"} <= scalar_tags(
        os.path.join(train_dir, "logs"))
    assert sorted(os.listdir(os.path.join(train_dir, "export"))) == ["3", "6", "latest"]
    assert open(os.path.join(train_dir, "export", "latest")).read().strip() == "6"

    again = train.train(data.data_dir, train_dir, apply_overrides(cfg, ["train.max_steps=6"]), progress=False)
    assert (again.start_step, again.step) == (6, 6)
    with pytest.raises(ValueError, match="different"):
        train.train(data.data_dir, train_dir, apply_overrides(cfg, ["model.num_mixtures=3"]), progress=False)


def test_epochs_run_to_completion_without_max_steps(data, tmp_path):
    cfg = small_config("logistic", "train.num_epochs=2")
    result = train.train(data.data_dir, str(tmp_path / "run"), cfg, progress=False)
    assert result.epochs_completed == 2 and result.step == 2 * 3  # 40 videos in batches of 16


@pytest.mark.parametrize("name", ["moe", "dbof"])
def test_export_round_trip_matches_the_keras_model(name, data, tmp_path):
    train_dir = str(tmp_path / name)
    result = train.train(data.data_dir, train_dir, small_config(name, "train.max_steps=4"), progress=False)
    model, cfg = export.load_model_from_checkpoint(train_dir)
    dataset = inputs.make_dataset(layout.record_pattern(data.data_dir, cfg.input.level), cfg.input,
                                  cfg.num_classes, training=False)
    expected = {}
    for features, _ in dataset:
        probabilities = model(model_inputs(features, cfg.input.level, cfg.input.feature_names), training=False)
        expected.update(zip((v.decode() for v in features["video_id"].numpy()), probabilities.numpy()))

    loaded = tf.saved_model.load(result.export_dir)
    files = sorted(glob.glob(layout.record_pattern(data.data_dir, cfg.input.level)))
    serialized = tf.constant(list(tf.data.TFRecordDataset(files).as_numpy_iterator()))
    outputs = loaded.signatures["serving_default"](serialized=serialized)
    assert outputs["probabilities"].dtype == tf.float32 and outputs["probabilities"].shape == (40, NUM_CLASSES)
    for video_id, row in zip(outputs["video_id"].numpy(), outputs["probabilities"].numpy()):
        np.testing.assert_allclose(row, expected[video_id.decode()], atol=1e-5)

    video_ids, probabilities, labels = serving.predict_records(train_dir, data.data_dir, batch_size=7)
    truth = dict(zip(data.video_ids, data.labels))
    assert sorted(video_ids) == sorted(data.video_ids) and probabilities.shape == (40, NUM_CLASSES)
    assert all(labels[i] == truth[video_id] for i, video_id in enumerate(video_ids))
    for video_id, row in zip(video_ids, probabilities):
        np.testing.assert_allclose(row, expected[video_id], atol=1e-5)
    served = serving.load_serving_fn(os.path.join(train_dir, "export"))
    assert served.level == cfg.input.level and served.num_classes == NUM_CLASSES
    assert served(serialized.numpy()[:2])["probabilities"].shape == (2, NUM_CLASSES)


def test_class_weighted_loss_under_forced_mixed_precision(data, tmp_path):
    cfg = small_config("frame_logistic", "train.max_steps=2", "train.class_weighted_loss=true",
                       "train.class_weight_power=0.5", "train.mixed_precision=on")
    result = train.train(data.data_dir, str(tmp_path / "run"), cfg, progress=False)
    assert result.step == 2 and np.isfinite(result.final_loss)
    metadata = json.load(open(os.path.join(result.export_dir, "vidpipe_export.json")))
    assert metadata["model_name"] == "frame_logistic" and metadata["num_classes"] == NUM_CLASSES


@pytest.mark.parametrize("damaged", ["training", "validation"])
def test_a_truncated_shard_is_named_in_one_line(damaged, data, tmp_path):
    copy = tmp_path / "data"
    shutil.copytree(data.data_dir, copy)
    shard = copy / "video" / "part-00001.tfrecord"
    shard.write_bytes(shard.read_bytes()[:-40])
    data_dir, validation_dir = (str(copy), data.data_dir) if damaged == "training" else (data.data_dir, str(copy))
    with pytest.raises(ValueError, match=rf"^record file {shard}: truncated or corrupt TFRecord file "
                                         r"\(truncated record at \d+[^\n]*$"):
        train.train(data_dir, str(tmp_path / "run"), small_config("logistic", "train.num_epochs=1"),
                    validation_dir=validation_dir, progress=False)


REPRODUCIBLE_RUN = ("train.max_steps=6", "input.sample_random_frames=true", "input.num_sampled_frames=5")


def trained_weights(data, train_dir, *extra):
    """Train a small DBoF (random frames drawn by the input pipeline and by the model) -> its weights."""
    train.train(data.data_dir, train_dir, small_config("dbof", *REPRODUCIBLE_RUN, *extra), progress=False)
    model, _ = export.load_model_from_checkpoint(train_dir)
    return [weight.numpy() for weight in model.weights]


def test_a_seeded_run_is_reproducible_bit_for_bit(data, tmp_path):
    first = trained_weights(data, str(tmp_path / "first"), "train.seed=5")
    again = trained_weights(data, str(tmp_path / "again"), "train.seed=5")
    other = trained_weights(data, str(tmp_path / "other"), "train.seed=6")
    assert len(first) == len(again) and all(np.array_equal(a, b) for a, b in zip(first, again))
    assert not all(np.array_equal(a, b) for a, b in zip(first, other))
    _, first_predictions, _ = serving.predict_records(str(tmp_path / "first"), data.data_dir)
    _, again_predictions, _ = serving.predict_records(str(tmp_path / "again"), data.data_dir)
    assert np.array_equal(first_predictions.view(np.uint32), again_predictions.view(np.uint32))


def test_op_determinism_trains_reproducibly_in_its_own_process(data, tmp_path):
    """train.op_determinism changes the whole process, so it runs in a fresh interpreter."""
    probe = f"""
import hashlib, json
from models import export, registry, synthetic, train
from models.config import apply_overrides
digests = []
for name, seed in (("first", 5), ("again", 5), ("other", 6)):
    cfg = apply_overrides(registry.default_config("dbof"), synthetic.TINY_MODEL_OVERRIDES["dbof"] + [
        "input.max_frames=8", "input.batch_size=16", "input.shuffle_buffer=64", *{list(REPRODUCIBLE_RUN)!r},
        "train.op_determinism=true", f"train.seed={{seed}}"])
    train.train({data.data_dir!r}, {str(tmp_path)!r} + "/" + name, cfg, progress=False)
    model, _ = export.load_model_from_checkpoint({str(tmp_path)!r} + "/" + name)
    digests.append(hashlib.sha256(b"".join(w.numpy().tobytes() for w in model.weights)).hexdigest())
print(json.dumps(digests))
"""
    result = subprocess.run([sys.executable, "-c", probe], check=False, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    first, again, other = json.loads(result.stdout.strip().splitlines()[-1])
    assert first == again and other != first


def test_a_bad_config_fails_before_anything_is_written(data, tmp_path, capsys):
    cfg = small_config("logistic")
    cfg.train.max_steps = -5
    with pytest.raises(ValueError, match=r"^train\.max_steps must be >= 1, got -5$"):
        train.train(data.data_dir, str(tmp_path / "run"), cfg, progress=False)
    assert not (tmp_path / "run").exists()
    with pytest.raises(ValueError, match=r"^train\.checkpoint_every_steps must be >= 1, got 0$"):
        train_cli.main(["--data", data.data_dir, "--train-dir", str(tmp_path / "cli"), "--model", "logistic",
                        "--set", "train.checkpoint_every_steps=0"])
    assert not (tmp_path / "cli").exists()


def test_staircase_learning_rate():
    schedule = train.StaircaseExampleDecay(0.01, 0.5, decay_examples=100, batch_size=10)
    learning_rates = [round(float(schedule(step)), 6) for step in (0, 9, 10, 19, 20, 35)]
    assert learning_rates == [0.01, 0.01, 0.005, 0.005, 0.0025, 0.00125]


def test_missing_export_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="no SavedModel"):
        serving.load_serving_fn(str(tmp_path))

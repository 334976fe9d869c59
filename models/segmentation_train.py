"""Training of the action segmentation models (BiGRU/BiLSTM tagger, MS-TCN) on an MS-TCN data set split.

The YouTube-8M models' training features: Adam on a staircase learning-rate schedule, global-norm gradient
clipping, checkpoints with resume, TensorBoard scalars, the resolved config saved, seeded runs.

Layout of ``train_dir``::

    config.json              the SegmentationExperiment, plus the data it was trained on (classes, feature_dim)
    checkpoints/ckpt-<step>  tf.train.Checkpoint of model, optimizer, step, epoch
    logs/                    TensorBoard: loss, lr (per step); test/acc, test/edit, test/f1@50 (per evaluation)

A second call with the same train_dir resumes from the latest checkpoint (saved after every epoch) and
trains until ``train.epochs`` epochs in all.
"""

from __future__ import annotations

import json
import math
import os
import time
import weakref
from dataclasses import dataclass, field, replace

import keras
import numpy as np
import tensorflow as tf

from models.config import ConfigError, apply_overrides
from models.segmentation import (
    FEATURES,
    MASK,
    build_segmentation_model,
    pad_videos,
    predict_frame_labels,
    segmentation_loss,
)
from models.segmentation_config import (
    MsTcnConfig,
    RnnTaggerConfig,
    SegmentationTrainConfig,
    default_model_config,
)
from models.train import StaircaseExampleDecay
from vidpipe.layout import CHECKPOINT_DIR, CONFIG_FILE, LOG_DIR
from vidpipe.segmentation.metrics import SegmentationScores
from vidpipe.segmentation.mstcn_format import MstcnDataset, SegmentationVideo, write_text_atomically

_COMPILED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


@dataclass
class SegmentationExperiment:
    """One segmentation run: model name and config, optimisation, frame subsampling and evaluation period.

    sample_rate: train and predict on every n-th frame (predictions are repeated back to full length).
    eval_every: score the test split every this many epochs (and always after the last one).
    """

    model_name: str = "bigru"
    model: RnnTaggerConfig | MsTcnConfig = field(default_factory=RnnTaggerConfig)
    train: SegmentationTrainConfig = field(default_factory=SegmentationTrainConfig)
    sample_rate: int = 1
    eval_every: int = 1

    def __post_init__(self) -> None:
        expected = default_model_config(self.model_name)
        if type(self.model) is not type(expected):
            raise ConfigError(f"model {self.model_name!r} needs a {type(expected).__name__}")
        if isinstance(expected, RnnTaggerConfig) and self.model.cell != expected.cell:
            raise ConfigError(f"model {self.model_name!r} has cell {expected.cell!r}, "
                              f"got model.cell={self.model.cell!r}")
        for name in ("sample_rate", "eval_every"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")

    @classmethod
    def create(cls, model_name: str, overrides: list[str] = ()) -> SegmentationExperiment:
        """Defaults of ``model_name`` then ``model.<key>=v`` / ``train.<key>=v`` / ``sample_rate=v`` overrides."""
        return cls(model_name, default_model_config(model_name)).with_overrides(overrides)

    def with_overrides(self, overrides: list[str]) -> SegmentationExperiment:
        result = self
        for override in overrides:
            key, sep, value = override.partition("=")
            section, dot, rest = key.strip().partition(".")
            if not sep:
                raise ConfigError(f"override {override!r} is not of the form key=value")
            if dot and section in ("model", "train"):
                try:
                    updated = apply_overrides(getattr(result, section), [f"{rest}={value}"])
                except ConfigError as error:
                    raise ConfigError(f"--set {override.strip()}: {section} section: {error}") from None
                result = replace(result, **{section: updated})
            elif not dot and section in ("sample_rate", "eval_every"):
                try:
                    result = replace(result, **{section: int(value)})
                except ValueError:
                    raise ConfigError(f"{section} must be an integer, got {value!r}") from None
            else:
                raise ConfigError(f"unknown config key {key.strip()!r}; use model.<key>, train.<key>, sample_rate "
                                  "or eval_every")
        return result

    def to_dict(self) -> dict:
        return {"model_name": self.model_name, "model": self.model.to_dict(), "train": self.train.to_dict(),
                "sample_rate": self.sample_rate, "eval_every": self.eval_every}

    @classmethod
    def from_dict(cls, data: dict) -> SegmentationExperiment:
        model_name = data.get("model_name", "bigru")
        model_cls = type(default_model_config(model_name))
        return cls(model_name, model_cls.from_dict(data.get("model", {}), "model"),
                   SegmentationTrainConfig.from_dict(data.get("train", {}), "train"),
                   int(data.get("sample_rate", 1)), int(data.get("eval_every", 1)))


@dataclass
class SegmentationTrainResult:
    """What a call to :func:`train_segmentation` did; ``start_step`` > 0 means it resumed."""

    train_dir: str
    start_step: int
    step: int
    epochs_completed: int
    final_loss: float | None
    test_scores: dict[str, float] | None
    train_frames_per_second: float | None
    checkpoint_path: str
    config: dict


def read_run_config(train_dir: str) -> dict:
    """``train_dir/config.json`` -> its dict (experiment plus "data": class_names, feature_dim, ...)."""
    path = os.path.join(train_dir, CONFIG_FILE)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: no such file; train a segmentation model into {train_dir} first")
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"{path}: not a JSON config ({error})") from None
    if not isinstance(data, dict) or "data" not in data:
        raise ValueError(f"{path}: not a segmentation run config (no 'data' section)")
    return data


def prepare_train_dir(train_dir: str, experiment: SegmentationExperiment, data_info: dict) -> None:
    """Refuse a train_dir holding another model or class set; write config.json."""
    os.makedirs(train_dir, exist_ok=True)
    if tf.train.latest_checkpoint(os.path.join(train_dir, CHECKPOINT_DIR)):
        saved = read_run_config(train_dir)
        old = SegmentationExperiment.from_dict(saved)
        mismatched = [name for name, before, now in (
            ("model_name", old.model_name, experiment.model_name), ("model", old.model, experiment.model),
            ("class_names", saved["data"].get("class_names"), data_info["class_names"]),
            ("feature_dim", saved["data"].get("feature_dim"), data_info["feature_dim"])) if before != now]
        if mismatched:
            raise ValueError(f"{train_dir} holds a checkpoint trained with different {mismatched}; "
                             "use a new --train-dir")
    document = {**experiment.to_dict(), "data": data_info}
    write_text_atomically(os.path.join(train_dir, CONFIG_FILE), json.dumps(document, indent=2, sort_keys=True) + "\n")


def load_split(dataset: MstcnDataset, split: str, number: int) -> list[SegmentationVideo]:
    return list(dataset.iterate(split, number))


def batches(videos: list[SegmentationVideo], batch_size: int, rng: np.random.Generator) -> list[list[int]]:
    """Shuffled video indices cut into batches of ``batch_size`` (the last may be smaller)."""
    order = rng.permutation(len(videos))
    return [order[start:start + batch_size].tolist() for start in range(0, len(order), batch_size)]


def make_train_step(model: keras.Model, optimizer: keras.optimizers.Optimizer, loss_fn, feature_dim: int):
    """tf.function (features [B, T, D], mask [B, T], labels int [B, T]) -> loss, doing one update."""

    @tf.function(input_signature=[tf.TensorSpec([None, None, feature_dim], tf.float32),
                                  tf.TensorSpec([None, None], tf.float32), tf.TensorSpec([None, None], tf.int32)])
    def train_step(features, mask, labels):
        with tf.GradientTape() as tape:
            loss = loss_fn(labels, model({FEATURES: features, MASK: mask}, training=True))
        gradients = tape.gradient(loss, model.trainable_variables)
        optimizer.apply(gradients, model.trainable_variables)
        return loss

    return train_step


def predict_videos(model: keras.Model, features: list[np.ndarray], batch_size: int) -> list[np.ndarray]:
    """Per-video features [T_i, D] -> predicted class indices int [T_i], through one compiled graph
    (``predict_frame_labels`` runs the model eagerly: a recurrent model then steps in Python)."""
    compiled = _COMPILED.get(model)
    if compiled is None:
        compiled = _COMPILED[model] = tf.function(lambda inputs, training=False: model(inputs, training=training),
                                                      reduce_retracing=True)
    return predict_frame_labels(compiled, features, batch_size)


def score_videos(model: keras.Model, videos: list[SegmentationVideo], batch_size: int) -> dict[str, float]:
    """MS-TCN scores (acc, edit, f1@10/25/50) of the model's predictions on ``videos`` (class indices)."""
    predictions = predict_videos(model, [video.features for video in videos], batch_size)
    scores = SegmentationScores()
    for video, predicted in zip(videos, predictions):
        scores.add(predicted, video.labels, video=video.name)
    return scores.result()


class SegmentationTrainer:
    """Model, optimizer and checkpointed step/epoch of one train dir, and the epoch loop over them."""

    def __init__(self, experiment: SegmentationExperiment, train_dir: str, feature_dim: int, num_classes: int,
                 steps_per_epoch: int):
        cfg = experiment.train
        self.experiment = experiment
        self.model = build_segmentation_model(experiment.model, feature_dim, num_classes)
        schedule = StaircaseExampleDecay(cfg.learning_rate, cfg.decay_rate,
                                         cfg.decay_epochs * steps_per_epoch * cfg.batch_size, cfg.batch_size)
        self.optimizer = keras.optimizers.Adam(learning_rate=schedule, global_clipnorm=cfg.clip_norm)
        self.optimizer.build(self.model.trainable_variables)
        self.step_var = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
        self.epoch_var = tf.Variable(0, dtype=tf.int64, trainable=False, name="epoch")
        self.checkpoint = tf.train.Checkpoint(model=self.model, optimizer=self.optimizer, step=self.step_var,
                                              epoch=self.epoch_var)
        self.manager = tf.train.CheckpointManager(self.checkpoint, os.path.join(train_dir, CHECKPOINT_DIR),
                                                  max_to_keep=3)
        self.writer = tf.summary.create_file_writer(os.path.join(train_dir, LOG_DIR))
        self._train_step = make_train_step(self.model, self.optimizer, segmentation_loss(experiment.model),
                                           feature_dim)
        self.final_loss: float | None = None
        self.test_scores: dict[str, float] | None = None
        self.frames = 0
        self.seconds = 0.0

    def restore(self) -> int:
        """Resume from the latest checkpoint, if any; returns the step it starts from."""
        if self.manager.latest_checkpoint:
            self.checkpoint.restore(self.manager.latest_checkpoint).assert_existing_objects_matched()
        return int(self.step_var)

    def fit(self, train_videos: list[SegmentationVideo], test_videos: list[SegmentationVideo],
            progress: bool = False) -> None:
        epochs = self.experiment.train.epochs
        with self.writer.as_default():
            for epoch in range(int(self.epoch_var), epochs):
                self.run_epoch(train_videos, epoch)
                self.epoch_var.assign(epoch + 1)
                if test_videos and ((epoch + 1) % self.experiment.eval_every == 0 or epoch + 1 == epochs):
                    self.evaluate(test_videos)
                self.manager.save(checkpoint_number=int(self.step_var))
                if progress:
                    print(f"epoch {epoch + 1}/{epochs} step {int(self.step_var)} loss {self.final_loss:.4f}"
                          + (f" test {json.dumps(self.test_scores)}" if self.test_scores else ""), flush=True)
        self.writer.flush()

    def run_epoch(self, videos: list[SegmentationVideo], epoch: int) -> None:
        """One pass over the training videos in seeded random batches of padded videos."""
        rng = np.random.default_rng(self.experiment.train.seed + epoch)
        for indices in batches(videos, self.experiment.train.batch_size, rng):
            chunk = [videos[index] for index in indices]
            inputs, labels = pad_videos([video.features for video in chunk], [video.labels for video in chunk])
            started = time.perf_counter()
            loss = float(self._train_step(inputs[FEATURES], inputs[MASK], labels))
            self.seconds += time.perf_counter() - started
            self.frames += sum(len(video.labels) for video in chunk)
            if not math.isfinite(loss):
                raise FloatingPointError(f"loss became {loss} at step {int(self.step_var) + 1}")
            self.step_var.assign_add(1)
            self.final_loss = loss
            step = int(self.step_var)
            tf.summary.scalar("loss", loss, step=step)
            tf.summary.scalar("lr", float(self.optimizer.learning_rate), step=step)

    def evaluate(self, test_videos: list[SegmentationVideo]) -> None:
        self.test_scores = score_videos(self.model, test_videos, self.experiment.train.batch_size)
        for key in ("acc", "edit", "f1@10", "f1@25", "f1@50"):
            tf.summary.scalar(f"test/{key}", self.test_scores[key], step=int(self.step_var))


def data_info(dataset: MstcnDataset, split_number: int, feature_dim: int) -> dict:
    return {"dataset": os.path.abspath(dataset.root), "split": split_number, "class_names": dataset.class_names,
            "feature_dim": feature_dim}


def train_segmentation(dataset_dir: str, train_dir: str, experiment: SegmentationExperiment, split: int = 1,
                       progress: bool = False) -> SegmentationTrainResult:
    """Train on ``splits/train.split<split>.bundle``, score on the test bundle; resume from train_dir."""
    dataset = MstcnDataset(dataset_dir, experiment.sample_rate)
    train_videos = load_split(dataset, "train", split)
    test_videos = load_split(dataset, "test", split)
    feature_dim = train_videos[0].features.shape[1]
    for video in train_videos + test_videos:
        if video.features.shape[1] != feature_dim:
            raise ValueError(f"{video.name}: features have D={video.features.shape[1]}, other videos D={feature_dim}")
    prepare_train_dir(train_dir, experiment, data_info(dataset, split, feature_dim))
    keras.utils.set_random_seed(experiment.train.seed)
    steps_per_epoch = math.ceil(len(train_videos) / experiment.train.batch_size)
    trainer = SegmentationTrainer(experiment, train_dir, feature_dim, dataset.num_classes, steps_per_epoch)
    start_step = trainer.restore()
    trainer.fit(train_videos, test_videos, progress)
    checkpoint = trainer.manager.latest_checkpoint
    if checkpoint is None or int(checkpoint.rsplit("-", 1)[-1]) != int(trainer.step_var):
        checkpoint = trainer.manager.save(checkpoint_number=int(trainer.step_var))
    if trainer.test_scores is None and test_videos:
        trainer.test_scores = score_videos(trainer.model, test_videos, experiment.train.batch_size)
    return SegmentationTrainResult(
        train_dir=train_dir, start_step=start_step, step=int(trainer.step_var),
        epochs_completed=int(trainer.epoch_var), final_loss=trainer.final_loss, test_scores=trainer.test_scores,
        train_frames_per_second=trainer.frames / trainer.seconds if trainer.seconds else None,
        checkpoint_path=checkpoint, config=experiment.to_dict())


def load_trained_model(train_dir: str) -> tuple[keras.Model, SegmentationExperiment, dict]:
    """The latest checkpoint's model of ``train_dir`` -> (model, experiment, data info of config.json)."""
    saved = read_run_config(train_dir)
    experiment = SegmentationExperiment.from_dict(saved)
    info = saved["data"]
    checkpoint_path = tf.train.latest_checkpoint(os.path.join(train_dir, CHECKPOINT_DIR))
    if checkpoint_path is None:
        raise FileNotFoundError(f"{os.path.join(train_dir, CHECKPOINT_DIR)}: no checkpoint")
    model = build_segmentation_model(experiment.model, int(info["feature_dim"]), len(info["class_names"]))
    tf.train.Checkpoint(model=model).restore(checkpoint_path).expect_partial().assert_existing_objects_matched()
    return model, experiment, info

"""Training: the loop, checkpoints with resume, TensorBoard scalars, and the export at the end.

Layout of ``train_dir``::

    config.json              the resolved ExperimentConfig (num_classes and input level filled in)
    checkpoints/ckpt-<step>  tf.train.Checkpoint of model, optimizer, step, epoch, examples
    logs/                    TensorBoard: loss, total_loss, learning_rate, examples_per_second,
                             validation/loss
    export/<step>/           SavedModel, signature "serving_default": serialized records [N] string
                             -> {"video_id": [N] string, "probabilities": [N, C] float32}
    export/latest            text file naming the newest export directory (e.g. "1200")

(names from :mod:`vidpipe.layout`; the export is written by :mod:`models.export`).

A second call with the same train_dir resumes from the latest checkpoint. An interrupted epoch
restarts from its beginning (the step count carries on), so ``max_steps`` bounds the total.
With ``train.deterministic`` (the default) a run from scratch is reproducible: the same seed, data
and machine give the same weights bit for bit on CPU (GPUs also need ``train.op_determinism``).
"""

from __future__ import annotations

import contextlib
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import keras
import tensorflow as tf

from models import inputs, losses, registry
from models.config import ExperimentConfig, TrainConfig
from models.export import export_saved_model
from models.features import model_inputs
from vidpipe import label_stats
from vidpipe.layout import (
    CHECKPOINT_DIR,
    CONFIG_FILE,
    EXPORT_DIR,
    LOG_DIR,
    record_pattern,
)


@dataclass
class TrainResult:
    """What a call to :func:`train` did. ``start_step`` > 0 means it resumed from a checkpoint."""

    train_dir: str
    start_step: int
    step: int
    epochs_completed: int
    final_loss: float | None
    validation_loss: float | None
    examples_per_second: float | None
    checkpoint_path: str
    export_dir: str
    config: ExperimentConfig


class StaircaseExampleDecay(keras.optimizers.schedules.LearningRateSchedule):
    """lr(step) = base * decay ** floor(step * batch_size / decay_examples)."""

    def __init__(self, base_learning_rate: float, decay: float, decay_examples: int, batch_size: int):
        self.base_learning_rate = base_learning_rate
        self.decay = decay
        self.decay_examples = decay_examples
        self.batch_size = batch_size

    def __call__(self, step):
        examples = tf.cast(step, tf.float32) * float(self.batch_size)
        exponent = tf.floor(examples / float(self.decay_examples))
        return self.base_learning_rate * tf.pow(tf.constant(self.decay, tf.float32), exponent)

    def get_config(self):
        return {"base_learning_rate": self.base_learning_rate, "decay": self.decay,
                "decay_examples": self.decay_examples, "batch_size": self.batch_size}


def resolve_config(cfg: ExperimentConfig, data_dir: str | None = None) -> ExperimentConfig:
    """Fill in input.level from the model and num_classes (max_label + 1) from ``data_dir``."""
    level = registry.input_level(cfg)
    num_classes = cfg.num_classes
    if num_classes is None:
        if data_dir is None:
            raise ValueError("num_classes is unset and no data_dir to read label_stats from")
        num_classes = label_stats.load_num_classes(data_dir)
    return replace(cfg, input=replace(cfg.input, level=level), num_classes=num_classes)


def use_mixed_precision(mode: str) -> bool:
    """"on", "off", or "auto" = on when TensorFlow sees a GPU."""
    if mode == "auto":
        return bool(tf.config.list_physical_devices("GPU"))
    return mode == "on"


@contextlib.contextmanager
def precision_policy(mixed: bool):
    """Set the Keras global dtype policy for the block and restore the previous one after."""
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy("mixed_float16" if mixed else "float32")
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy(previous)


def make_optimizer(cfg: ExperimentConfig, mixed: bool) -> keras.optimizers.Optimizer:
    """Adam on the staircase schedule with global-norm clipping (loss scaled under mixed precision)."""
    schedule = StaircaseExampleDecay(cfg.train.base_learning_rate, cfg.train.learning_rate_decay,
                                     cfg.train.learning_rate_decay_examples, cfg.input.batch_size)
    clip = cfg.train.clip_gradient_norm if cfg.train.clip_gradient_norm > 0 else None
    optimizer = keras.optimizers.Adam(learning_rate=schedule, global_clipnorm=clip)
    if mixed:
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    return optimizer


def make_train_step(model: keras.Model, optimizer: keras.optimizers.Optimizer,
                    loss_fn: Callable, cfg: ExperimentConfig) -> Callable:
    """tf.function (features dict, labels [B, C]) -> (label_loss, total_loss) doing one update."""
    level, feature_names = cfg.input.level, cfg.input.feature_names
    penalty = cfg.train.regularization_penalty

    @tf.function(reduce_retracing=True)
    def train_step(features, labels):
        with tf.GradientTape() as tape:
            probabilities = model(model_inputs(features, level, feature_names), training=True)
            label_loss = loss_fn(labels, probabilities)
            total_loss = label_loss
            if model.losses and penalty:
                total_loss = total_loss + penalty * tf.add_n([tf.cast(term, tf.float32) for term in model.losses])
            scaled_loss = optimizer.scale_loss(total_loss)
        gradients = tape.gradient(scaled_loss, model.trainable_variables)
        optimizer.apply(gradients, model.trainable_variables)
        return label_loss, total_loss

    return train_step


def evaluate_loss(model: keras.Model, dataset: tf.data.Dataset, cfg: ExperimentConfig) -> float:
    """Mean (unweighted) cross-entropy per video over ``dataset``."""
    level, feature_names = cfg.input.level, cfg.input.feature_names

    @tf.function(reduce_retracing=True)
    def batch_loss(features, labels):
        probabilities = model(model_inputs(features, level, feature_names), training=False)
        return losses.cross_entropy(labels, probabilities), tf.shape(labels)[0]

    total, count = 0.0, 0
    for features, labels in dataset:
        loss, size = batch_loss(features, labels)
        total += float(loss) * int(size)
        count += int(size)
    return total / count if count else float("nan")


def _check_resumable(train_dir: str, cfg: ExperimentConfig) -> None:
    path = os.path.join(train_dir, CONFIG_FILE)
    if not tf.io.gfile.exists(path):
        return
    saved = ExperimentConfig.load(path)
    mismatched = [name for name, old, new in (
        ("model_name", saved.model_name, cfg.model_name),
        ("model", saved.model, cfg.model),
        ("num_classes", saved.num_classes, cfg.num_classes),
        ("input.feature_names", saved.input.feature_names, cfg.input.feature_names),
    ) if old != new]
    if mismatched:
        raise ValueError(f"{train_dir} holds a checkpoint trained with different {mismatched}; "
                         "use a new train_dir or the saved config.json")


def prepare_train_dir(train_dir: str, cfg: ExperimentConfig) -> None:
    """Create ``train_dir``, refuse a checkpoint of another model there, write config.json."""
    tf.io.gfile.makedirs(train_dir)
    if tf.train.latest_checkpoint(os.path.join(train_dir, CHECKPOINT_DIR)):
        _check_resumable(train_dir, cfg)
    cfg.save(os.path.join(train_dir, CONFIG_FILE))


def seed_everything(train_cfg: TrainConfig) -> None:
    """Seed Python, numpy and TensorFlow; turn on deterministic kernels when asked."""
    keras.utils.set_random_seed(train_cfg.seed)
    if train_cfg.op_determinism:
        tf.config.experimental.enable_op_determinism()


def make_loss(cfg: ExperimentConfig, data_dir: str) -> losses.CrossEntropyLoss:
    """Cross-entropy, class weighted from ``data_dir``'s label statistics when ``train.class_weighted_loss``."""
    class_weights = (label_stats.load_class_weights(data_dir, cfg.num_classes, cfg.train.class_weight_power)
                     if cfg.train.class_weighted_loss else None)
    return losses.CrossEntropyLoss(class_weights)


@dataclass
class RunStats:
    """Losses and throughput of one call to :func:`train`; the first (tracing) step is left out of the rate."""

    final_loss: float | None = None
    validation_loss: float | None = None
    window_start: float = field(default_factory=time.perf_counter)
    window_examples: int = 0
    run_start: float | None = None
    run_examples: int = 0

    def count(self, batch: int) -> None:
        if self.run_start is None:
            self.run_start = time.perf_counter()
        else:
            self.run_examples += batch
        self.window_examples += batch

    def window_rate(self) -> float:
        """Examples per second since the last call (or the start); starts a new window."""
        now = time.perf_counter()
        rate = self.window_examples / max(now - self.window_start, 1e-9)
        self.window_start, self.window_examples = now, 0
        return rate

    def examples_per_second(self) -> float | None:
        elapsed = time.perf_counter() - self.run_start if self.run_start is not None else 0.0
        return self.run_examples / elapsed if self.run_examples and elapsed > 0 else None


class Trainer:
    """The model, optimizer and checkpointed counters of one train dir, and the loop over them.

    Build it inside :func:`precision_policy`; ``restore`` resumes from the latest checkpoint.
    """

    def __init__(self, cfg: ExperimentConfig, train_dir: str, loss_fn: Callable, mixed: bool, progress: bool):
        self.cfg = cfg
        self.model = registry.build_model(cfg)
        self.optimizer = make_optimizer(cfg, mixed)
        self.optimizer.build(self.model.trainable_variables)
        self.step_var = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
        self.epoch_var = tf.Variable(0, dtype=tf.int64, trainable=False, name="epoch")
        self.examples_var = tf.Variable(0, dtype=tf.int64, trainable=False, name="examples")
        checkpoint = tf.train.Checkpoint(model=self.model, optimizer=self.optimizer, step=self.step_var,
                                         epoch=self.epoch_var, examples=self.examples_var)
        self.checkpoint = checkpoint
        self.manager = tf.train.CheckpointManager(checkpoint, os.path.join(train_dir, CHECKPOINT_DIR),
                                                  max_to_keep=cfg.train.keep_checkpoints)
        self._train_step = make_train_step(self.model, self.optimizer, loss_fn, cfg)
        self.writer = tf.summary.create_file_writer(os.path.join(train_dir, LOG_DIR))
        self.progbar = keras.utils.Progbar(cfg.train.max_steps, stateful_metrics=["lr"]) if progress else None
        self.stats = RunStats()

    @property
    def step(self) -> int:
        """Updates done so far, those of earlier runs included (the checkpointed step counter)."""
        return int(self.step_var)

    def restore(self) -> int:
        """Resume from the latest checkpoint, if any; returns the step it starts from."""
        if self.manager.latest_checkpoint:
            self.checkpoint.restore(self.manager.latest_checkpoint).assert_existing_objects_matched()
        return self.step

    def finished(self) -> bool:
        return self.cfg.train.max_steps is not None and self.step >= self.cfg.train.max_steps

    def fit(self, pattern: str, validation_pattern: str | None) -> None:
        """Epochs until ``num_epochs`` or ``max_steps``; validation after each completed epoch and at the end."""
        with self.writer.as_default():
            for epoch in range(int(self.epoch_var), self.cfg.train.num_epochs):
                if self.finished() or not self.run_epoch(pattern, epoch):
                    break
                self.epoch_var.assign(epoch + 1)
                if validation_pattern:
                    self.validate(validation_pattern)
            if validation_pattern and self.stats.validation_loss is None:
                self.validate(validation_pattern)
        self.writer.flush()

    def run_epoch(self, pattern: str, epoch: int) -> bool:
        """One pass over the training records; False when it stopped at ``max_steps``."""
        dataset = inputs.make_dataset(pattern, self.cfg.input, self.cfg.num_classes, training=True,
                                      seed=self.cfg.train.seed + epoch, deterministic=self.cfg.train.deterministic)
        for features, labels in dataset:
            self.train_batch(features, labels)
            if self.finished():
                return False
        return True

    def train_batch(self, features: dict, labels: tf.Tensor) -> None:
        """One update on labels [B, C]; then scalars, checkpoint and progress bar when due."""
        label_loss, total_loss = self._train_step(features, labels)
        batch = int(tf.shape(labels)[0])
        step = int(self.step_var.assign_add(1))
        self.examples_var.assign_add(batch)
        loss = float(label_loss)
        if not math.isfinite(loss):
            raise FloatingPointError(f"loss became {loss} at step {step}")
        self.stats.final_loss = loss
        self.stats.count(batch)
        learning_rate = float(self.optimizer.learning_rate)
        if step % self.cfg.train.log_every_steps == 0:
            self.log_scalars(step, loss, float(total_loss), learning_rate)
        if step % self.cfg.train.checkpoint_every_steps == 0:
            self.manager.save(checkpoint_number=step)
        if self.progbar is not None:
            self.progbar.update(step, values=[("loss", loss), ("lr", learning_rate)])

    def log_scalars(self, step: int, loss: float, total_loss: float, learning_rate: float) -> None:
        tf.summary.scalar("loss", loss, step=step)
        tf.summary.scalar("total_loss", total_loss, step=step)
        tf.summary.scalar("learning_rate", learning_rate, step=step)
        tf.summary.scalar("examples_per_second", self.stats.window_rate(), step=step)

    def validate(self, pattern: str) -> None:
        dataset = inputs.make_dataset(pattern, self.cfg.input, self.cfg.num_classes, training=False,
                                      out_of_range_labels="drop")
        self.stats.validation_loss = evaluate_loss(self.model, dataset, self.cfg)
        tf.summary.scalar("validation/loss", self.stats.validation_loss, step=self.step)

    def save_final_checkpoint(self) -> str:
        """A checkpoint of the current step unless the latest one already is; returns its path."""
        latest, step = self.manager.latest_checkpoint, self.step
        if latest is None or int(latest.rsplit("-", 1)[-1]) != step:
            self.manager.save(checkpoint_number=step)
        return self.manager.latest_checkpoint


def train(data_dir: str, train_dir: str, cfg: ExperimentConfig, validation_dir: str | None = None,
          progress: bool = True) -> TrainResult:
    """Train ``cfg.model_name`` on ``<data_dir>/{frame|video}/*.tfrecord``, resuming from
    ``train_dir/checkpoints`` when present; checkpoint, log, export. See the module docstring."""
    cfg.validate()
    cfg = resolve_config(cfg, data_dir)
    prepare_train_dir(train_dir, cfg)
    mixed = use_mixed_precision(cfg.train.mixed_precision)
    seed_everything(cfg.train)
    loss_fn = make_loss(cfg, data_dir)
    pattern = record_pattern(data_dir, cfg.input.level)
    validation_pattern = record_pattern(validation_dir, cfg.input.level) if validation_dir else None
    record_files = inputs.record_files(pattern) + (inputs.record_files(validation_pattern) if validation_dir else [])

    with precision_policy(mixed):
        trainer = Trainer(cfg, train_dir, loss_fn, mixed, progress)
        start_step = trainer.restore()
        with inputs.naming_unreadable_file(record_files):
            trainer.fit(pattern, validation_pattern)
        checkpoint_path = trainer.save_final_checkpoint()
        export_dir = export_saved_model(trainer.model, cfg, os.path.join(train_dir, EXPORT_DIR), trainer.step,
                                        data_dir)

    stats = trainer.stats
    return TrainResult(
        train_dir=train_dir, start_step=start_step, step=trainer.step, epochs_completed=int(trainer.epoch_var),
        final_loss=stats.final_loss, validation_loss=stats.validation_loss,
        examples_per_second=stats.examples_per_second(), checkpoint_path=checkpoint_path, export_dir=export_dir,
        config=cfg)

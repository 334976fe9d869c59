"""Training loop, checkpoints with resume, TensorBoard scalars and SavedModel export.

Layout of ``train_dir``::

    config.json              the resolved ExperimentConfig (num_classes and input level filled in)
    checkpoints/ckpt-<step>  tf.train.Checkpoint of model, optimizer, step, epoch, examples
    logs/                    TensorBoard: loss, total_loss, learning_rate, examples_per_second,
                             validation/loss
    export/<step>/           SavedModel, signature "serving_default": serialized records [N] string
                             -> {"video_id": [N] string, "probabilities": [N, C] float32}
    export/latest            text file naming the newest export directory (e.g. "1200")

A second call with the same train_dir resumes from the latest checkpoint. An interrupted epoch
restarts from its beginning (the step count carries on), so ``max_steps`` bounds the total.
With ``train.deterministic`` (the default) a run from scratch is reproducible: the same seed, data
and machine give the same weights bit for bit on CPU (GPUs also need ``train.op_determinism``).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import time
from dataclasses import dataclass, replace
from typing import Callable, Optional

import keras
import tensorflow as tf

from models import inputs, losses, registry
from models.config import ExperimentConfig
from models.features import VIDEO_ID, model_inputs
from vidpipe import schema

CONFIG_FILE = "config.json"
CHECKPOINT_DIR = "checkpoints"
LOG_DIR = "logs"
EXPORT_DIR = "export"
LATEST_EXPORT = "latest"
EXPORT_METADATA = "vidpipe_export.json"
SERVING_SIGNATURE = "serving_default"


@dataclass
class TrainResult:
    """What a call to :func:`train` did. ``start_step`` > 0 means it resumed from a checkpoint."""

    train_dir: str
    start_step: int
    step: int
    epochs_completed: int
    final_loss: Optional[float]
    validation_loss: Optional[float]
    examples_per_second: Optional[float]
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


def record_pattern(data_dir: str, level: str) -> str:
    """``<data>/frame/*.tfrecord`` or ``<data>/video/*.tfrecord``."""
    if level == "frame":
        return schema.frame_record_path_pattern(data_dir)
    if level == "video":
        return schema.video_record_path_pattern(data_dir)
    raise ValueError(f"level must be 'frame' or 'video', got {level!r}")


def resolve_config(cfg: ExperimentConfig, data_dir: str | None = None) -> ExperimentConfig:
    """Fill in input.level from the model and num_classes (max_label + 1) from ``data_dir``."""
    spec = registry.get(cfg.model_name)
    if cfg.input.level not in (None, spec.level):
        raise ValueError(f"model {cfg.model_name!r} is {spec.level}-level but input.level is {cfg.input.level!r}")
    num_classes = cfg.num_classes
    if num_classes is None:
        if data_dir is None:
            raise ValueError("num_classes is unset and no data_dir to read label_stats from")
        num_classes = losses.load_num_classes(data_dir)
    return replace(cfg, input=replace(cfg.input, level=spec.level), num_classes=num_classes)


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
                total_loss = total_loss + penalty * tf.add_n([tf.cast(l, tf.float32) for l in model.losses])
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


class ServingModule(tf.Module):
    """Wraps a Keras model with a string-in signature: serialized records [N] -> video ids, probabilities."""

    def __init__(self, model: keras.Model, level: str, feature_names: tuple[str, ...], max_frames: int):
        super().__init__(name="vidpipe_serving")
        self.model = model
        self._level = level
        self._feature_names = tuple(feature_names)
        self._max_frames = max_frames
        self.serve = tf.function(self._serve, input_signature=[tf.TensorSpec([None], tf.string, name="serialized")])

    def _serve(self, serialized):
        features = inputs.parse_serialized_batch(serialized, self._level, self._feature_names, self._max_frames)
        probabilities = self.model(model_inputs(features, self._level, self._feature_names), training=False)
        return {"video_id": features[VIDEO_ID], "probabilities": tf.cast(probabilities, tf.float32)}


def _write_text_atomically(path: str, text: str) -> None:
    tmp = f"{path}.tmp"
    with tf.io.gfile.GFile(tmp, "w") as handle:
        handle.write(text)
    tf.io.gfile.rename(tmp, path, overwrite=True)


def export_saved_model(model: keras.Model, cfg: ExperimentConfig, export_root: str, step: int,
                       train_data_dir: str | None = None) -> str:
    """Write ``<export_root>/<step>/`` (SavedModel + vidpipe_export.json) and point ``latest`` at it.

    The metadata carries the feature space of ``train_data_dir``'s records (None when unknown), which
    prediction and evaluation compare with the records they score.
    """
    from vidpipe import feature_space
    export_dir = os.path.join(export_root, str(step))
    staging = f"{export_dir}.tmp"
    for path in (staging, export_dir):
        if tf.io.gfile.exists(path):
            tf.io.gfile.rmtree(path)
    module = ServingModule(model, cfg.input.level, cfg.input.feature_names, cfg.input.max_frames)
    tf.saved_model.save(module, staging, signatures={SERVING_SIGNATURE: module.serve})
    metadata = {"model_name": cfg.model_name, "level": cfg.input.level, "num_classes": cfg.num_classes,
                "feature_names": list(cfg.input.feature_names), "max_frames": cfg.input.max_frames,
                "step": step, "signature": SERVING_SIGNATURE, "config": cfg.to_dict(),
                "feature_space": feature_space.read(train_data_dir) if train_data_dir else None}
    with tf.io.gfile.GFile(os.path.join(staging, EXPORT_METADATA), "w") as handle:
        json.dump(metadata, handle, indent=2)
    tf.io.gfile.rename(staging, export_dir)
    _write_text_atomically(os.path.join(export_root, LATEST_EXPORT), f"{step}\n")
    return export_dir


def load_model_from_checkpoint(train_dir: str, checkpoint_path: str | None = None) -> tuple[keras.Model, ExperimentConfig]:
    """Rebuild the model from ``train_dir/config.json`` and restore a checkpoint (default: latest)."""
    cfg = ExperimentConfig.load(os.path.join(train_dir, CONFIG_FILE))
    checkpoint_path = checkpoint_path or tf.train.latest_checkpoint(os.path.join(train_dir, CHECKPOINT_DIR))
    if checkpoint_path is None:
        raise FileNotFoundError(f"no checkpoint under {os.path.join(train_dir, CHECKPOINT_DIR)}")
    model = registry.build_model(cfg)
    tf.train.Checkpoint(model=model).restore(checkpoint_path).expect_partial()
    return model, cfg


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


def train(data_dir: str, train_dir: str, cfg: ExperimentConfig, validation_dir: str | None = None,
          progress: bool = True) -> TrainResult:
    """Train ``cfg.model_name`` on ``<data_dir>/{frame|video}/*.tfrecord``, resuming from
    ``train_dir/checkpoints`` when present; checkpoint, log, export. See the module docstring."""
    cfg.validate()
    cfg = resolve_config(cfg, data_dir)
    tf.io.gfile.makedirs(train_dir)
    checkpoint_dir = os.path.join(train_dir, CHECKPOINT_DIR)
    if tf.train.latest_checkpoint(checkpoint_dir):
        _check_resumable(train_dir, cfg)
    cfg.save(os.path.join(train_dir, CONFIG_FILE))

    mixed = use_mixed_precision(cfg.train.mixed_precision)
    keras.utils.set_random_seed(cfg.train.seed)
    if cfg.train.op_determinism:
        tf.config.experimental.enable_op_determinism()
    class_weights = (losses.load_class_weights(data_dir, cfg.num_classes, cfg.train.class_weight_power)
                     if cfg.train.class_weighted_loss else None)
    loss_fn = losses.CrossEntropyLoss(class_weights)
    pattern = record_pattern(data_dir, cfg.input.level)
    inputs.record_files(pattern)

    with precision_policy(mixed):
        model = registry.build_model(cfg)
        optimizer = make_optimizer(cfg, mixed)
        optimizer.build(model.trainable_variables)
        step_var = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
        epoch_var = tf.Variable(0, dtype=tf.int64, trainable=False, name="epoch")
        examples_var = tf.Variable(0, dtype=tf.int64, trainable=False, name="examples")
        checkpoint = tf.train.Checkpoint(model=model, optimizer=optimizer, step=step_var,
                                         epoch=epoch_var, examples=examples_var)
        manager = tf.train.CheckpointManager(checkpoint, checkpoint_dir, max_to_keep=cfg.train.keep_checkpoints)
        if manager.latest_checkpoint:
            checkpoint.restore(manager.latest_checkpoint).assert_existing_objects_matched()
        start_step = step = int(step_var)
        train_step = make_train_step(model, optimizer, loss_fn, cfg)
        writer = tf.summary.create_file_writer(os.path.join(train_dir, LOG_DIR))
        max_steps = cfg.train.max_steps
        progbar = keras.utils.Progbar(max_steps, stateful_metrics=["lr"]) if progress else None
        validation_pattern = record_pattern(validation_dir, cfg.input.level) if validation_dir else None

        final_loss = validation_loss = None
        window_start, window_examples = time.perf_counter(), 0
        run_start, run_examples, first_step_done = None, 0, False
        finished = max_steps is not None and step >= max_steps
        with writer.as_default():
            for epoch in range(int(epoch_var), cfg.train.num_epochs):
                if finished:
                    break
                dataset = inputs.make_dataset(pattern, cfg.input, cfg.num_classes, training=True,
                                              seed=cfg.train.seed + epoch, deterministic=cfg.train.deterministic)
                for features, labels in dataset:
                    label_loss, total_loss = train_step(features, labels)
                    batch = int(tf.shape(labels)[0])
                    step += 1
                    step_var.assign(step)
                    examples_var.assign_add(batch)
                    final_loss = float(label_loss)
                    if not math.isfinite(final_loss):
                        raise FloatingPointError(f"loss became {final_loss} at step {step}")
                    if first_step_done:
                        run_examples += batch
                    else:
                        first_step_done, run_start = True, time.perf_counter()
                    window_examples += batch
                    learning_rate = float(optimizer.learning_rate)
                    if step % cfg.train.log_every_steps == 0:
                        now = time.perf_counter()
                        tf.summary.scalar("loss", final_loss, step=step)
                        tf.summary.scalar("total_loss", float(total_loss), step=step)
                        tf.summary.scalar("learning_rate", learning_rate, step=step)
                        tf.summary.scalar("examples_per_second", window_examples / max(now - window_start, 1e-9), step=step)
                        window_start, window_examples = now, 0
                    if step % cfg.train.checkpoint_every_steps == 0:
                        manager.save(checkpoint_number=step)
                    if progbar is not None:
                        progbar.update(step, values=[("loss", final_loss), ("lr", learning_rate)])
                    if max_steps is not None and step >= max_steps:
                        finished = True
                        break
                if not finished:
                    epoch_var.assign(epoch + 1)
                    if validation_pattern:
                        validation_loss = _validation_loss(model, validation_pattern, cfg)
                        tf.summary.scalar("validation/loss", validation_loss, step=step)
            if validation_pattern and validation_loss is None:
                validation_loss = _validation_loss(model, validation_pattern, cfg)
                tf.summary.scalar("validation/loss", validation_loss, step=step)
        writer.flush()

        if manager.latest_checkpoint is None or int(manager.latest_checkpoint.rsplit("-", 1)[-1]) != step:
            manager.save(checkpoint_number=step)
        export_dir = export_saved_model(model, cfg, os.path.join(train_dir, EXPORT_DIR), step, data_dir)

    elapsed = time.perf_counter() - run_start if run_start is not None else 0.0
    return TrainResult(
        train_dir=train_dir, start_step=start_step, step=step, epochs_completed=int(epoch_var),
        final_loss=final_loss, validation_loss=validation_loss,
        examples_per_second=run_examples / elapsed if run_examples and elapsed > 0 else None,
        checkpoint_path=manager.latest_checkpoint, export_dir=export_dir, config=cfg)


def _validation_loss(model: keras.Model, pattern: str, cfg: ExperimentConfig) -> float:
    dataset = inputs.make_dataset(pattern, cfg.input, cfg.num_classes, training=False, out_of_range_labels="drop")
    return evaluate_loss(model, dataset, cfg)

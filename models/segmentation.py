"""Temporal action segmentation models over per-frame features: a recurrent tagger and MS-TCN.

Both take ``{"features": float [B, T, D], "mask": float [B, T]}`` (mask 1 on true frames, 0 on padding)
and return logits that are zero on padded frames:

- :func:`build_rnn_tagger` (seed 000): stacked bidirectional GRU/LSTM -> per-frame logits [B, T, C];
  trained with :class:`MaskedFrameCrossEntropy`.
- :func:`build_mstcn` (Farha & Gall, MS-TCN): stages of dilated residual temporal convolutions, each
  refining the softmax of the previous one -> stage logits [B, S, T, C] (the last stage is the prediction);
  trained with :class:`MsTcnLoss` (cross-entropy + truncated MSE smoothing, summed over stages).

Frame labels are int [B, T] with :data:`IGNORE_LABEL` (-1) on padded frames; the losses skip those frames.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import keras
import numpy as np
from keras import ops

from models.segmentation_config import MsTcnConfig, RnnTaggerConfig

FEATURES = "features"
MASK = "mask"
IGNORE_LABEL = -1


def pad_videos(features: Sequence[np.ndarray], labels: Sequence[np.ndarray] | None = None,
               max_length: int | None = None) -> tuple[dict[str, np.ndarray], np.ndarray | None]:
    """Per-video features [T_i, D] (and labels [T_i]) -> ({"features": [B, T, D], "mask": [B, T]}, labels [B, T]).

    Padding is zeros in the features and mask, IGNORE_LABEL in the labels; T = max_length or the longest video
    (longer videos are cut to max_length).
    """
    if not len(features):
        raise ValueError("no videos to batch")
    dims = {np.shape(array)[1] for array in features}
    if len(dims) != 1 or any(np.ndim(array) != 2 for array in features):
        raise ValueError(f"every video needs features [T, D] with one D; got D in {sorted(dims)}")
    length = max_length or max(len(array) for array in features)
    batch = np.zeros((len(features), length, dims.pop()), np.float32)
    mask = np.zeros((len(features), length), np.float32)
    padded_labels = None if labels is None else np.full((len(features), length), IGNORE_LABEL, np.int32)
    for index, array in enumerate(features):
        count = min(len(array), length)
        batch[index, :count] = array[:count]
        mask[index, :count] = 1.0
        if padded_labels is not None:
            if len(labels[index]) != len(array):
                raise ValueError(f"video {index}: {len(array)} feature frames but {len(labels[index])} labels")
            padded_labels[index, :count] = labels[index][:count]
    return {FEATURES: batch, MASK: mask}, padded_labels


def final_logits(outputs):
    """Model outputs -> per-frame logits [B, T, C]: the last stage of [B, S, T, C], or [B, T, C] itself."""
    return outputs[:, -1] if len(outputs.shape) == 4 else outputs


def masked_sparse_cross_entropy(labels, logits, mask=None):
    """Mean cross-entropy over the valid positions -> scalar.

    labels int [B, T] (negative: ignored), logits [B, T, C], mask [B, T] (optional, 0: ignored).
    """
    logits = ops.cast(logits, "float32")
    labels = ops.cast(labels, "int32")
    valid = ops.cast(labels >= 0, "float32")
    if mask is not None:
        valid = valid * ops.cast(mask, "float32")
    safe_labels = ops.where(labels >= 0, labels, ops.zeros_like(labels))
    cross_entropy = ops.sparse_categorical_crossentropy(safe_labels, logits, from_logits=True)
    return ops.sum(cross_entropy * valid) / ops.maximum(ops.sum(valid), 1.0)


def truncated_smoothing_loss(logits, valid, clamp: float = 4.0):
    """MS-TCN's smoothing term -> scalar.

    mean over adjacent valid frames (t-1, t) and classes of min((log p_t - stop_gradient(log p_{t-1}))², clamp²);
    logits [B, T, C], valid float [B, T].
    """
    log_probabilities = ops.log_softmax(ops.cast(logits, "float32"), axis=-1)
    difference = log_probabilities[:, 1:] - ops.stop_gradient(log_probabilities[:, :-1])
    squared = ops.minimum(ops.square(difference), clamp * clamp)
    pairs = valid[:, 1:] * valid[:, :-1]
    num_classes = ops.cast(ops.shape(logits)[-1], "float32")
    return ops.sum(squared * pairs[..., None]) / ops.maximum(ops.sum(pairs) * num_classes, 1.0)


def mstcn_loss(labels, stage_logits, smoothing_weight: float = 0.15, clamp: float = 4.0, mask=None):
    """Sum over stages of cross-entropy + smoothing_weight * truncated smoothing -> scalar.

    labels int [B, T] (negative: padding), stage_logits [B, S, T, C], mask [B, T] optional.
    """
    labels = ops.cast(labels, "int32")
    valid = ops.cast(labels >= 0, "float32")
    if mask is not None:
        valid = valid * ops.cast(mask, "float32")
    total = 0.0
    for stage in range(stage_logits.shape[1]):
        logits = stage_logits[:, stage]
        total = total + masked_sparse_cross_entropy(labels, logits, valid)
        if smoothing_weight:
            total = total + smoothing_weight * truncated_smoothing_loss(logits, valid, clamp)
    return total


@keras.saving.register_keras_serializable(package="vidpipe")
class MaskedFrameCrossEntropy(keras.losses.Loss):
    """y_true int [B, T] (IGNORE_LABEL on padding), y_pred logits [B, T, C] (or [B, S, T, C]: last stage)."""

    def __init__(self, name: str = "masked_frame_cross_entropy", **kwargs):
        kwargs.pop("reduction", None)
        super().__init__(name=name, reduction="sum", **kwargs)

    def call(self, y_true, y_pred):
        return masked_sparse_cross_entropy(y_true, final_logits(y_pred))


@keras.saving.register_keras_serializable(package="vidpipe")
class MsTcnLoss(keras.losses.Loss):
    """y_true int [B, T] (IGNORE_LABEL on padding), y_pred stage logits [B, S, T, C]; see :func:`mstcn_loss`."""

    def __init__(self, smoothing_weight: float = 0.15, clamp: float = 4.0, name: str = "mstcn_loss", **kwargs):
        kwargs.pop("reduction", None)
        super().__init__(name=name, reduction="sum", **kwargs)
        self.smoothing_weight = smoothing_weight
        self.clamp = clamp

    def call(self, y_true, y_pred):
        return mstcn_loss(y_true, y_pred, self.smoothing_weight, self.clamp)

    def get_config(self):
        return {**super().get_config(), "smoothing_weight": self.smoothing_weight, "clamp": self.clamp}


@keras.saving.register_keras_serializable(package="vidpipe")
class MaskedFrameAccuracy(keras.metrics.Metric):
    """Fraction of true frames whose argmax (last stage) equals the label; IGNORE_LABEL frames are skipped."""

    def __init__(self, name: str = "frame_accuracy", **kwargs):
        super().__init__(name=name, **kwargs)
        self.correct = self.add_variable(shape=(), initializer="zeros", name="correct")
        self.total = self.add_variable(shape=(), initializer="zeros", name="total")

    def update_state(self, y_true, y_pred, sample_weight=None):
        labels = ops.cast(y_true, "int32")
        valid = ops.cast(labels >= 0, "float32")
        predicted = ops.cast(ops.argmax(final_logits(y_pred), axis=-1), "int32")
        self.correct.assign_add(ops.sum(ops.cast(predicted == labels, "float32") * valid))
        self.total.assign_add(ops.sum(valid))

    def result(self):
        return self.correct / ops.maximum(self.total, 1.0)

    def reset_state(self):
        self.correct.assign(0.0)
        self.total.assign(0.0)


@keras.saving.register_keras_serializable(package="vidpipe")
class BoolMask(keras.layers.Layer):
    """mask float [B, T] -> bool [B, T]."""

    def call(self, mask):
        return ops.greater(mask, 0.5)


@keras.saving.register_keras_serializable(package="vidpipe")
class ApplyFrameMask(keras.layers.Layer):
    """(values [B, T, C], mask [B, T]) -> values with padded frames zeroed; no Keras mask is passed on."""

    def call(self, values, mask, **kwargs):
        return values * ops.cast(mask, values.dtype)[..., None]

    def compute_mask(self, inputs, mask=None):
        return None


def rnn_layer(cell: str, units: int, return_sequences: bool, recurrent_dropout: float = 0.0,
               init_scale: float | None = None, name: str | None = None) -> keras.layers.Layer:
    kwargs = {}
    if init_scale is not None:
        kwargs = {"kernel_initializer": keras.initializers.RandomUniform(-init_scale, init_scale),
                  "recurrent_initializer": keras.initializers.RandomUniform(-init_scale, init_scale)}
    layer_class = {"gru": keras.layers.GRU, "lstm": keras.layers.LSTM}[cell]
    return layer_class(units, return_sequences=return_sequences, recurrent_dropout=recurrent_dropout, name=name,
                       **kwargs)


def segmentation_inputs(feature_dim: int) -> dict[str, keras.KerasTensor]:
    """{"features": [B, T, D] float32, "mask": [B, T] float32} symbolic inputs."""
    return {FEATURES: keras.Input((None, feature_dim), name=FEATURES),
            MASK: keras.Input((None,), name=MASK)}


def build_rnn_tagger(cfg: RnnTaggerConfig, feature_dim: int, num_classes: int) -> keras.Model:
    """features [B, T, D] -> ``cfg.layers`` (bidirectional) GRU/LSTM layers, each followed by variational
    output dropout -> per-frame dense layer -> logits [B, T, C] (zero on padded frames)."""
    inputs = segmentation_inputs(feature_dim)
    frames_valid = BoolMask(name="bool_mask")(inputs[MASK])
    x = inputs[FEATURES]
    for index in range(cfg.layers):
        rnn = rnn_layer(cfg.cell, cfg.units, True, cfg.recurrent_dropout, cfg.init_scale, name=f"{cfg.cell}_{index}")
        if cfg.bidirectional:
            rnn = keras.layers.Bidirectional(rnn, merge_mode="concat", name=f"bi_{cfg.cell}_{index}")
        x = rnn(x, mask=frames_valid)
        if cfg.dropout:
            x = keras.layers.SpatialDropout1D(cfg.dropout, name=f"variational_dropout_{index}")(x)
    logits = keras.layers.Dense(num_classes, name="frame_logits")(x)
    logits = ApplyFrameMask(name="masked_logits")(logits, inputs[MASK])
    return keras.Model(inputs, logits, name="rnn_tagger")


def track_by_name(owner: keras.layers.Layer, layers: Sequence[keras.layers.Layer]) -> None:
    """Make each of ``layers`` an attribute of ``owner`` named after it: TensorFlow's checkpoints follow
    attributes but not the lists Keras 3 layers keep sub-layers in."""
    for layer in layers:
        setattr(owner, layer.name, layer)


@keras.saving.register_keras_serializable(package="vidpipe")
class DilatedResidualLayer(keras.layers.Layer):
    """x [B, T, F] -> x + dropout(conv1x1(relu(dilated conv3(x)))), zeroed on padded frames."""

    def __init__(self, dilation: int, filters: int, dropout: float = 0.5, **kwargs):
        super().__init__(**kwargs)
        self.dilation = dilation
        self.filters = filters
        self.dropout_rate = dropout
        self.conv_dilated = keras.layers.Conv1D(filters, 3, padding="same", dilation_rate=dilation,
                                                activation="relu", name="conv_dilated")
        self.conv_1x1 = keras.layers.Conv1D(filters, 1, name="conv_1x1")
        self.dropout = keras.layers.Dropout(dropout)

    def build(self, input_shape):
        self.conv_dilated.build(input_shape)
        self.conv_1x1.build((*input_shape[:-1], self.filters))

    def call(self, x, frame_mask, training=None):
        out = self.conv_1x1(self.conv_dilated(x))
        out = self.dropout(out, training=training)
        return (x + out) * frame_mask

    def get_config(self):
        return {**super().get_config(), "dilation": self.dilation, "filters": self.filters,
                "dropout": self.dropout_rate}


@keras.saving.register_keras_serializable(package="vidpipe")
class SingleStageTcn(keras.layers.Layer):
    """x [B, T, D] -> conv1x1 to F -> ``num_layers`` dilated residual layers (dilation 2**i) -> conv1x1 -> [B, T, C]."""

    def __init__(self, num_layers: int, filters: int, num_classes: int, dropout: float = 0.5, **kwargs):
        super().__init__(**kwargs)
        self.num_layers = num_layers
        self.filters = filters
        self.num_classes = num_classes
        self.dropout_rate = dropout
        self.conv_in = keras.layers.Conv1D(filters, 1, name="conv_in")
        self.residual_layers = [DilatedResidualLayer(2 ** index, filters, dropout, name=f"residual_{index}")
                                for index in range(num_layers)]
        track_by_name(self, self.residual_layers)
        self.conv_out = keras.layers.Conv1D(num_classes, 1, name="conv_out")

    def build(self, input_shape):
        self.conv_in.build(input_shape)
        hidden_shape = (*input_shape[:-1], self.filters)
        for layer in self.residual_layers:
            layer.build(hidden_shape)
        self.conv_out.build(hidden_shape)

    def call(self, x, frame_mask, training=None):
        out = self.conv_in(x) * frame_mask
        for layer in self.residual_layers:
            out = layer(out, frame_mask, training=training)
        return self.conv_out(out) * frame_mask

    def get_config(self):
        return {**super().get_config(), "num_layers": self.num_layers, "filters": self.filters,
                "num_classes": self.num_classes, "dropout": self.dropout_rate}


@keras.saving.register_keras_serializable(package="vidpipe")
class MultiStageTcn(keras.layers.Layer):
    """(features [B, T, D], mask [B, T]) -> stage logits [B, S, T, C]; stage s > 1 reads softmax(stage s-1)."""

    def __init__(self, num_stages: int, num_layers: int, filters: int, num_classes: int, dropout: float = 0.5,
                 **kwargs):
        super().__init__(**kwargs)
        self.num_stages = num_stages
        self.num_layers = num_layers
        self.filters = filters
        self.num_classes = num_classes
        self.dropout_rate = dropout
        self.stages = [SingleStageTcn(num_layers, filters, num_classes, dropout, name=f"stage_{index + 1}")
                       for index in range(num_stages)]
        track_by_name(self, self.stages)

    def build(self, features_shape, mask_shape=None):
        self.stages[0].build(features_shape)
        for stage in self.stages[1:]:
            stage.build((*features_shape[:-1], self.num_classes))

    def call(self, features, mask, training=None):
        frame_mask = ops.cast(mask, features.dtype)[..., None]
        out = self.stages[0](features, frame_mask, training=training)
        outputs = [out]
        for stage in self.stages[1:]:
            out = stage(ops.softmax(out, axis=-1) * frame_mask, frame_mask, training=training)
            outputs.append(out)
        return ops.stack(outputs, axis=1)

    def compute_mask(self, inputs, mask=None):
        return None

    def get_config(self):
        return {**super().get_config(), "num_stages": self.num_stages, "num_layers": self.num_layers,
                "filters": self.filters, "num_classes": self.num_classes, "dropout": self.dropout_rate}


def build_mstcn(cfg: MsTcnConfig, feature_dim: int, num_classes: int) -> keras.Model:
    """{"features": [B, T, D], "mask": [B, T]} -> stage logits [B, S, T, C] (zero on padded frames)."""
    inputs = segmentation_inputs(feature_dim)
    stage_logits = MultiStageTcn(cfg.num_stages, cfg.num_layers, cfg.num_filters, num_classes, cfg.dropout,
                                 name="ms_tcn")(inputs[FEATURES], inputs[MASK])
    return keras.Model(inputs, stage_logits, name="mstcn")


SEGMENTATION_BUILDERS = {RnnTaggerConfig: build_rnn_tagger, MsTcnConfig: build_mstcn}
SEGMENTATION_LOSSES = {RnnTaggerConfig: lambda cfg: MaskedFrameCrossEntropy(),
                       MsTcnConfig: lambda cfg: MsTcnLoss(cfg.smoothing_weight, cfg.smoothing_clamp)}


def for_config(table: dict[type, Callable], cfg: object, kind: str) -> Callable:
    """``table[type(cfg)]``; a config of another type is a ValueError naming ``kind``."""
    try:
        return table[type(cfg)]
    except KeyError:
        raise ValueError(f"not a {kind} config: {type(cfg).__name__}") from None


def build_segmentation_model(cfg: RnnTaggerConfig | MsTcnConfig, feature_dim: int, num_classes: int) -> keras.Model:
    """The model of a segmentation config."""
    return for_config(SEGMENTATION_BUILDERS, cfg, "segmentation model")(cfg, feature_dim, num_classes)


def segmentation_loss(cfg: RnnTaggerConfig | MsTcnConfig) -> keras.losses.Loss:
    """The training loss of a segmentation config's model."""
    return for_config(SEGMENTATION_LOSSES, cfg, "segmentation model")(cfg)


def predict_frame_labels(model: keras.Model, features: Sequence[np.ndarray], batch_size: int = 4) -> list[np.ndarray]:
    """Per-video features [T_i, D] -> per-video predicted class indices int [T_i] (argmax of the last stage)."""
    predictions: list[np.ndarray] = []
    for start in range(0, len(features), batch_size):
        chunk = list(features[start:start + batch_size])
        inputs, _ = pad_videos(chunk)
        logits = ops.convert_to_numpy(final_logits(model(inputs, training=False)))
        predictions.extend(np.argmax(logits[index, :len(video)], axis=-1).astype(np.int32)
                           for index, video in enumerate(chunk))
    return predictions

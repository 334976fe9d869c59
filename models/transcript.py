"""Transcripts from frame features (seed 003's encoder-decoder): the ordered list of a video's actions.

A transcript is the sequence of segment labels of a video (``vidpipe.segmentation.metrics.transcript``).
Tokens: actions 0..C-1, then START = C and END = C + 1 (vocabulary C + 2).

- Training (teacher forcing): ``{"features": [B, T, D], "mask": [B, T], "decoder_inputs": int [B, L]}`` ->
  logits [B, L, C + 2]; the decoder reads START a_1 .. a_n and is trained to emit a_1 .. a_n END with the
  masked sequence cross-entropy (targets IGNORE_LABEL past END): see :func:`teacher_forcing_batch`.
- Decoding: :func:`greedy_decode` and :func:`beam_search_decode` (beam width 1 is greedy) over the same
  one-step function the teacher-forced pass scans.

Encoder: masked average pooling over ``input_pool_size`` frames, then a (bidirectional) GRU. Decoder: a GRU
cell started from a tanh projection of the encoder's final states, with no attention, Bahdanau attention
(additive score on the previous state; context fed into the GRU input and the readout) or Luong attention
(general score on the new state; attentional vector tanh(W[c; s]) feeds the readout and the next input).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import keras
import numpy as np
from keras import ops

from models.segmentation import FEATURES, IGNORE_LABEL, MASK, MaskedFrameCrossEntropy, pad_videos
from models.segmentation_config import TranscriptConfig

DECODER_INPUTS = "decoder_inputs"
_NEG_INF = -1e9


def start_token(num_classes: int) -> int:
    return num_classes


def end_token(num_classes: int) -> int:
    return num_classes + 1


def teacher_forcing_batch(transcripts: Sequence[Sequence[int]], num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Transcripts (action ids) -> (decoder inputs int32 [B, L + 1], targets int32 [B, L + 1]), L = longest.

    inputs  = START a_1 .. a_n END END ..  (END as filler; those positions are not scored)
    targets = a_1 .. a_n END IGNORE_LABEL ..
    """
    longest = max((len(sequence) for sequence in transcripts), default=0)
    start, end = start_token(num_classes), end_token(num_classes)
    inputs = np.full((len(transcripts), longest + 1), end, np.int32)
    targets = np.full((len(transcripts), longest + 1), IGNORE_LABEL, np.int32)
    for row, sequence in enumerate(transcripts):
        sequence = [int(item) for item in sequence]
        if any(not 0 <= item < num_classes for item in sequence):
            raise ValueError(f"transcript {row}: action ids must lie in [0, {num_classes}), got {sequence}")
        inputs[row, 0] = start
        inputs[row, 1:len(sequence) + 1] = sequence
        targets[row, :len(sequence)] = sequence
        targets[row, len(sequence)] = end
    return inputs, targets


def transcript_loss() -> keras.losses.Loss:
    """Masked sequence cross-entropy: targets int [B, L] (IGNORE_LABEL: not scored), logits [B, L, V]."""
    return MaskedFrameCrossEntropy(name="transcript_cross_entropy")


@keras.saving.register_keras_serializable(package="vidpipe")
class TranscriptModel(keras.Model):
    """GRU encoder-decoder over frame features; ``call`` is the teacher-forced pass -> logits [B, L, C + 2]."""

    def __init__(self, config: TranscriptConfig | dict, feature_dim: int, num_classes: int, **kwargs):
        super().__init__(**kwargs)
        self.cfg = config if isinstance(config, TranscriptConfig) else TranscriptConfig.from_dict(config)
        self.feature_dim = feature_dim
        self.num_classes = num_classes
        self.vocabulary_size = num_classes + 2
        self.supports_jit = False
        cfg = self.cfg
        encoder = keras.layers.GRU(cfg.encoder_units, return_sequences=True, return_state=True, name="encoder_gru")
        self.encoder = keras.layers.Bidirectional(encoder, name="encoder") if cfg.bidirectional_encoder else encoder
        memory_dim = cfg.encoder_units * (2 if cfg.bidirectional_encoder else 1)
        self.memory_dim = memory_dim
        self.bridge = keras.layers.Dense(cfg.decoder_units, activation="tanh", name="bridge")
        self.embedding = keras.layers.Embedding(self.vocabulary_size, cfg.embedding_dim, name="embedding")
        self.cell = keras.layers.GRUCell(cfg.decoder_units, name="decoder_cell")
        self.readout_dropout = keras.layers.Dropout(cfg.dropout, name="readout_dropout")
        self.output_layer = keras.layers.Dense(self.vocabulary_size, name="output")
        cell_input = cfg.embedding_dim
        if cfg.attention == "bahdanau":
            self.key_layer = keras.layers.Dense(cfg.attention_units, use_bias=False, name="attention_keys")
            self.query_layer = keras.layers.Dense(cfg.attention_units, name="attention_query")
            self.score_layer = keras.layers.Dense(1, use_bias=False, name="attention_score")
            cell_input += memory_dim
            readout_dim = cfg.decoder_units + memory_dim
            self.key_layer.build((None, None, memory_dim))
            self.query_layer.build((None, cfg.decoder_units))
            self.score_layer.build((None, None, cfg.attention_units))
        elif cfg.attention == "luong":
            self.key_layer = keras.layers.Dense(cfg.decoder_units, use_bias=False, name="attention_keys")
            self.attentional_layer = keras.layers.Dense(cfg.decoder_units, activation="tanh", name="attentional")
            cell_input += cfg.decoder_units
            readout_dim = cfg.decoder_units
            self.key_layer.build((None, None, memory_dim))
            self.attentional_layer.build((None, memory_dim + cfg.decoder_units))
        else:
            readout_dim = cfg.decoder_units
        self.encoder.build((None, None, feature_dim))
        self.bridge.build((None, memory_dim))
        self.embedding.build((None,))
        self.cell.build((None, cell_input))
        self.output_layer.build((None, readout_dim))

    def build(self, input_shape=None):
        self.built = True

    def get_config(self):
        return {**super().get_config(), "config": self.cfg.to_dict(), "feature_dim": self.feature_dim,
                "num_classes": self.num_classes}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        return cls(config.pop("config"), config.pop("feature_dim"), config.pop("num_classes"), **config)

    def encode(self, features, mask, training=None):
        """features [B, T, D], mask [B, T] -> (memory [B, T', H], keys [B, T', A], memory mask [B, T'], carry)."""
        features = ops.convert_to_tensor(features, "float32")
        weights = ops.cast(ops.convert_to_tensor(mask), "float32")
        pool = self.cfg.input_pool_size
        if pool > 1:
            length = ops.shape(features)[1]
            extra = (pool - length % pool) % pool
            features = ops.pad(features, [[0, 0], [0, extra], [0, 0]])
            weights = ops.pad(weights, [[0, 0], [0, extra]])
            windows = (length + extra) // pool
            features = ops.reshape(features, (-1, windows, pool, self.feature_dim))
            weights = ops.reshape(weights, (-1, windows, pool))
            counts = ops.sum(weights, axis=2)
            features = ops.sum(features * weights[..., None], axis=2) / ops.maximum(counts, 1.0)[..., None]
            weights = ops.cast(counts > 0, "float32")
        encoded = self.encoder(features, mask=weights > 0.5, training=training)
        memory, final_states = encoded[0], encoded[1:]
        final_state = ops.concatenate(list(final_states), axis=-1) if len(final_states) > 1 else final_states[0]
        state = self.bridge(final_state)
        keys = self.key_layer(memory) if self.cfg.attention != "none" else memory
        carry = (state,)
        if self.cfg.attention == "bahdanau":
            carry = (state, ops.zeros_like(memory[:, 0]))
        elif self.cfg.attention == "luong":
            carry = (state, ops.zeros_like(state))
        return memory, keys, weights, carry

    def _attend(self, scores, memory, memory_mask):
        scores = ops.where(memory_mask > 0.5, scores, ops.full_like(scores, _NEG_INF))
        weights = ops.softmax(scores, axis=-1)
        return ops.sum(weights[..., None] * memory, axis=1)

    def step(self, carry, tokens, memory, keys, memory_mask, training=None):
        """One decoder step: carry, previous tokens int [N] -> next carry (see :meth:`readout`)."""
        embedded = self.embedding(tokens)
        state = carry[0]
        if self.cfg.attention == "bahdanau":
            scores = ops.squeeze(self.score_layer(ops.tanh(keys + self.query_layer(state)[:, None, :])), -1)
            context = self._attend(scores, memory, memory_mask)
            output, _ = self.cell(ops.concatenate([embedded, context], axis=-1), [state], training=training)
            return (output, context)
        if self.cfg.attention == "luong":
            output, _ = self.cell(ops.concatenate([embedded, carry[1]], axis=-1), [state], training=training)
            scores = ops.sum(keys * output[:, None, :], axis=-1)
            context = self._attend(scores, memory, memory_mask)
            return (output, self.attentional_layer(ops.concatenate([context, output], axis=-1)))
        output, _ = self.cell(embedded, [state], training=training)
        return (output,)

    def readout(self, carry, training=None):
        """carry [..., *] -> logits [..., C + 2]."""
        if self.cfg.attention == "bahdanau":
            features = ops.concatenate(list(carry), axis=-1)
        else:
            features = carry[-1]
        return self.output_layer(self.readout_dropout(features, training=training))

    def call(self, inputs, training=None):
        memory, keys, memory_mask, carry = self.encode(inputs[FEATURES], inputs[MASK], training=training)
        tokens = ops.transpose(ops.cast(inputs[DECODER_INPUTS], "int32"), (1, 0))

        def scan_step(previous, token):
            following = self.step(previous, token, memory, keys, memory_mask, training=training)
            return following, following

        _, carries = ops.scan(scan_step, carry, tokens)
        carries = tuple(ops.transpose(value, (1, 0, 2)) for value in carries)
        return self.readout(carries, training=training)


def build_transcript_model(cfg: TranscriptConfig, feature_dim: int, num_classes: int) -> TranscriptModel:
    """The encoder-decoder for ``cfg``; call it on {"features", "mask", "decoder_inputs"}."""
    return TranscriptModel(cfg, feature_dim, num_classes, name="transcript")


def _numpy_state(carry) -> tuple[np.ndarray, ...]:
    return tuple(ops.convert_to_numpy(value) for value in carry)


def _step_function(model: TranscriptModel, inputs: dict, repeats: int):
    """-> (step(tokens [N], state) -> (log-probabilities [N, V], state), initial state), N = B * repeats."""
    memory, keys, memory_mask, carry = model.encode(inputs[FEATURES], inputs[MASK], training=False)
    memory, keys, memory_mask = (np.repeat(ops.convert_to_numpy(value), repeats, axis=0)
                                 for value in (memory, keys, memory_mask))
    initial = tuple(np.repeat(value, repeats, axis=0) for value in _numpy_state(carry))

    def step(tokens: np.ndarray, state: tuple[np.ndarray, ...]):
        following = model.step(tuple(state), ops.convert_to_tensor(tokens.astype(np.int32)), memory, keys,
                               memory_mask, training=False)
        log_probabilities = ops.log_softmax(model.readout(following, training=False), axis=-1)
        return ops.convert_to_numpy(log_probabilities).astype(np.float64), _numpy_state(following)

    return step, initial


def _allowed(log_probabilities: np.ndarray, step_index: int, start: int, end: int, max_length: int) -> np.ndarray:
    log_probabilities = log_probabilities.copy()
    log_probabilities[..., start] = -np.inf
    if step_index == max_length:
        kept = log_probabilities[..., end].copy()
        log_probabilities[...] = -np.inf
        log_probabilities[..., end] = kept
    return log_probabilities


def greedy_search(step: Callable, initial_state: tuple, batch_size: int, start: int, end: int,
                  max_length: int) -> tuple[list[list[int]], np.ndarray]:
    """Greedy decoding with a generic step function -> (token lists without END, log-probabilities [B]).

    step(tokens int [B], state) -> (log-probabilities [B, V], state). START is never emitted; after
    ``max_length`` tokens only END is allowed.
    """
    tokens = np.full(batch_size, start, np.int64)
    state = initial_state
    scores = np.zeros(batch_size)
    finished = np.zeros(batch_size, bool)
    outputs: list[list[int]] = [[] for _ in range(batch_size)]
    for step_index in range(max_length + 1):
        log_probabilities, state = step(tokens, state)
        log_probabilities = _allowed(log_probabilities, step_index, start, end, max_length)
        tokens = np.argmax(log_probabilities, axis=-1)
        for row in np.flatnonzero(~finished):
            scores[row] += log_probabilities[row, tokens[row]]
            if tokens[row] == end:
                finished[row] = True
            else:
                outputs[row].append(int(tokens[row]))
        if finished.all():
            break
    return outputs, scores


def beam_search(step: Callable, initial_state: tuple, batch_size: int, start: int, end: int, beam_width: int,
                max_length: int, length_penalty: float = 0.0) -> tuple[list[list[int]], np.ndarray]:
    """Beam search with a generic step function -> (best token lists without END, their log-probabilities [B]).

    step(tokens int [B * K], state) -> (log-probabilities [B * K, V], state); rows b * K + k are beam k of
    item b, and ``initial_state`` holds K copies of each item's state. Finished hypotheses stay in the beam
    with their score; the search ends when every beam has ended or after max_length + 1 steps (the last one
    allows END only). The best finished hypothesis maximises log p / length**length_penalty (length counts END).
    With beam_width 1 it returns what :func:`greedy_search` returns.
    """
    if beam_width < 1:
        raise ValueError(f"beam width must be >= 1, got {beam_width}")
    width = beam_width
    scores = np.full((batch_size, width), -np.inf)
    scores[:, 0] = 0.0
    tokens = np.full((batch_size, width), start, np.int64)
    finished = np.zeros((batch_size, width), bool)
    lengths = np.zeros((batch_size, width), np.int64)
    history = np.zeros((batch_size, width, 0), np.int64)
    state = initial_state
    rows = np.arange(batch_size)[:, None]
    for step_index in range(max_length + 1):
        log_probabilities, following = step(tokens.reshape(-1), state)
        vocabulary = log_probabilities.shape[-1]
        log_probabilities = _allowed(log_probabilities.reshape(batch_size, width, vocabulary), step_index, start, end,
                                     max_length)
        ended_row = np.full(vocabulary, -np.inf)
        ended_row[end] = 0.0
        log_probabilities = np.where(finished[..., None], ended_row, log_probabilities)
        candidates = (scores[..., None] + log_probabilities).reshape(batch_size, width * vocabulary)
        order = np.argsort(-candidates, axis=1, kind="stable")[:, :width]
        parents, chosen = order // vocabulary, order % vocabulary
        scores = np.take_along_axis(candidates, order, axis=1)
        was_finished = finished[rows, parents]
        lengths = lengths[rows, parents] + ~was_finished
        history = np.concatenate([history[rows, parents], chosen[..., None]], axis=2)
        finished = was_finished | (chosen == end)
        tokens = chosen
        flat_parents = (rows * width + parents).reshape(-1)
        state = tuple(value[flat_parents] for value in following)
        if finished.all():
            break
    ranking = scores / np.maximum(lengths, 1) ** length_penalty if length_penalty else scores
    best = np.argmax(ranking, axis=1)
    outputs = []
    for item, beam in enumerate(best):
        sequence = history[item, beam, :lengths[item, beam]].tolist()
        outputs.append(sequence[:-1] if sequence and sequence[-1] == end else sequence)
    return outputs, scores[np.arange(batch_size), best]


def _as_inputs(videos) -> dict:
    if isinstance(videos, dict):
        return videos
    inputs, _ = pad_videos(list(videos))
    return inputs


def greedy_decode(model: TranscriptModel, videos, max_length: int | None = None
                  ) -> tuple[list[list[int]], np.ndarray]:
    """Transcripts of videos (features [T_i, D] each, or a padded {"features", "mask"} batch), greedily.

    -> (action id lists, log-probabilities [B] including END).
    """
    inputs = _as_inputs(videos)
    step, initial = _step_function(model, inputs, 1)
    return greedy_search(step, initial, len(inputs[FEATURES]), start_token(model.num_classes),
                         end_token(model.num_classes), max_length or model.cfg.max_output_length)


def beam_search_decode(model: TranscriptModel, videos, beam_width: int | None = None, max_length: int | None = None,
                       length_penalty: float | None = None) -> tuple[list[list[int]], np.ndarray]:
    """Transcripts of videos by beam search (width ``beam_width`` or the config's); see :func:`beam_search`."""
    inputs = _as_inputs(videos)
    width = beam_width or model.cfg.beam_width
    step, initial = _step_function(model, inputs, width)
    penalty = model.cfg.length_penalty if length_penalty is None else length_penalty
    return beam_search(step, initial, len(inputs[FEATURES]), start_token(model.num_classes),
                       end_token(model.num_classes), width, max_length or model.cfg.max_output_length, penalty)


def sequence_log_probability(model: TranscriptModel, videos, transcripts: Sequence[Sequence[int]]) -> np.ndarray:
    """log p(a_1 .. a_n END | video) per video [B], from the teacher-forced pass."""
    inputs = dict(_as_inputs(videos))
    decoder_inputs, targets = teacher_forcing_batch(transcripts, model.num_classes)
    inputs[DECODER_INPUTS] = decoder_inputs
    log_probabilities = ops.convert_to_numpy(ops.log_softmax(model(inputs, training=False), axis=-1))
    valid = targets >= 0
    picked = np.take_along_axis(log_probabilities, np.where(valid, targets, 0)[..., None], axis=-1)[..., 0]
    return np.sum(np.where(valid, picked, 0.0), axis=1).astype(np.float64)

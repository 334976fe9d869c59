"""Transcript encoder-decoder: teacher forcing, masking, greedy and beam-search decoding."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from models.segmentation import IGNORE_LABEL, pad_videos
from models.segmentation_config import TranscriptConfig
from models.transcript import (
    DECODER_INPUTS,
    beam_search,
    beam_search_decode,
    build_transcript_model,
    greedy_decode,
    greedy_search,
    sequence_log_probability,
    teacher_forcing_batch,
    transcript_loss,
)
from vidpipe.segmentation.metrics import transcript_scores

NUM_CLASSES = 4
FEATURE_DIM = 6
MEANS = np.random.default_rng(99).normal(size=(NUM_CLASSES, FEATURE_DIM))


def toy_transcripts(num_videos: int, seed: int):
    """Videos of 2-3 distinct actions in random order, 6-13 frames each; frames = action mean + noise."""
    rng = np.random.default_rng(seed)
    features, transcripts = [], []
    for _ in range(num_videos):
        actions = [int(action) for action in rng.choice(NUM_CLASSES, int(rng.integers(2, 4)), replace=False)]
        frame_labels = np.repeat(actions, rng.integers(6, 14, size=len(actions)))
        features.append((MEANS[frame_labels] + 0.5 * rng.normal(size=(len(frame_labels), FEATURE_DIM)))
                        .astype(np.float32))
        transcripts.append(actions)
    return features, transcripts


def small_config(attention: str, **overrides) -> TranscriptConfig:
    values = {"encoder_units": 24, "decoder_units": 24, "embedding_dim": 8, "attention": attention,
              "attention_units": 16, "input_pool_size": 2, "dropout": 0.0, "max_output_length": 6}
    values.update(overrides)
    return TranscriptConfig(**values)


def train(attention: str, epochs: int = 30):
    keras.utils.set_random_seed(0)
    features, transcripts = toy_transcripts(96, seed=0)
    inputs, _ = pad_videos(features)
    inputs[DECODER_INPUTS], targets = teacher_forcing_batch(transcripts, NUM_CLASSES)
    model = build_transcript_model(small_config(attention), FEATURE_DIM, NUM_CLASSES)
    model.compile(keras.optimizers.Adam(1e-2), loss=transcript_loss())
    history = model.fit(inputs, targets, batch_size=16, epochs=epochs, verbose=0)
    return model, history.history["loss"]


@pytest.fixture(scope="module")
def trained():
    return train("bahdanau")


def test_teacher_forcing_batch():
    inputs, targets = teacher_forcing_batch([[2, 0, 1], [3]], NUM_CLASSES)
    start, end = NUM_CLASSES, NUM_CLASSES + 1
    np.testing.assert_array_equal(inputs, [[start, 2, 0, 1], [start, 3, end, end]])
    np.testing.assert_array_equal(targets, [[2, 0, 1, end], [3, end, IGNORE_LABEL, IGNORE_LABEL]])
    with pytest.raises(ValueError, match=r"transcript 0: action ids must lie in \[0, 4\)"):
        teacher_forcing_batch([[4]], NUM_CLASSES)


@pytest.mark.parametrize("attention", ["none", "bahdanau", "luong"])
def test_shapes_padding_and_causality(attention):
    keras.utils.set_random_seed(0)
    model = build_transcript_model(small_config(attention, input_pool_size=3), FEATURE_DIM, NUM_CLASSES)
    features, transcripts = toy_transcripts(3, seed=4)
    inputs, _ = pad_videos(features)
    inputs[DECODER_INPUTS], _ = teacher_forcing_batch(transcripts, NUM_CLASSES)
    logits = np.asarray(model(inputs))
    assert logits.shape == (3, inputs[DECODER_INPUTS].shape[1], NUM_CLASSES + 2)
    for index, video in enumerate(features):
        alone, _ = pad_videos([video])
        alone[DECODER_INPUTS], _ = teacher_forcing_batch([transcripts[index]], NUM_CLASSES)
        steps = alone[DECODER_INPUTS].shape[1]
        np.testing.assert_allclose(logits[index, :steps], np.asarray(model(alone))[0], atol=1e-5)
    changed = dict(inputs)
    changed[DECODER_INPUTS] = inputs[DECODER_INPUTS].copy()
    changed[DECODER_INPUTS][:, 2:] = 0
    np.testing.assert_allclose(np.asarray(model(changed))[:, :2], logits[:, :2], atol=1e-6)


def _markov_step(tokens, state):
    """A fixed next-token table per item; tokens 0, 1 are actions, 2 START, 3 END.

    Item 0: greedy takes 0 then END (p .6 * .5 = .30), but [1] END has p .4 * .9 = .36.
    Item 1: greedy's [0, 1] END (p .7 * .6 * .9 = .378) is the best sequence.
    Item 2: repeats 0 with p .8 and never prefers END.
    """
    items, = state
    tables = {
        0: {2: [0.6, 0.4, 0.0, 0.0], 0: [0.25, 0.25, 0.0, 0.5], 1: [0.05, 0.05, 0.0, 0.9], 3: [0, 0, 0, 1.0]},
        1: {2: [0.7, 0.3, 0.0, 0.0], 0: [0.0, 0.6, 0.0, 0.4], 1: [0.1, 0.0, 0.0, 0.9], 3: [0, 0, 0, 1.0]},
        2: {2: [0.7, 0.3, 0.0, 0.0], 0: [0.8, 0.0, 0.0, 0.2], 1: [0.5, 0.0, 0.0, 0.5], 3: [0, 0, 0, 1.0]},
    }
    with np.errstate(divide="ignore"):
        rows = [np.log(tables[int(item)][int(token)]) for item, token in zip(items, tokens)]
    return np.stack(rows), (items,)


def test_beam_search_finds_what_greedy_misses():
    items = np.array([0, 1])
    greedy, greedy_scores = greedy_search(_markov_step, (items,), 2, start=2, end=3, max_length=5)
    assert greedy == [[0], [0, 1]]
    np.testing.assert_allclose(np.exp(greedy_scores), [0.30, 0.378], rtol=1e-9)
    beams, beam_scores = beam_search(_markov_step, (np.repeat(items, 2),), 2, start=2, end=3, beam_width=2,
                                     max_length=5)
    assert beams == [[1], [0, 1]]
    np.testing.assert_allclose(np.exp(beam_scores), [0.36, 0.378], rtol=1e-9)
    one, one_scores = beam_search(_markov_step, (items,), 2, start=2, end=3, beam_width=1, max_length=5)
    assert one == greedy
    np.testing.assert_array_equal(one_scores, greedy_scores)


def test_decoding_stops_at_max_length_with_a_forced_end():
    items = np.array([2])
    greedy, scores = greedy_search(_markov_step, (items,), 1, start=2, end=3, max_length=2)
    assert greedy == [[0, 0]]
    np.testing.assert_allclose(np.exp(scores[0]), 0.7 * 0.8 * 0.2, rtol=1e-9)
    # within 2 actions the best sequence is [1] END (.3 * .5 = .15); [0] END (.14) is pruned on the way
    beams, beam_scores = beam_search(_markov_step, (np.repeat(items, 3),), 1, start=2, end=3, beam_width=3,
                                     max_length=2)
    assert beams == [[1]]
    np.testing.assert_allclose(np.exp(beam_scores[0]), 0.15, rtol=1e-9)


def test_trained_model_transcribes_held_out_videos(trained):
    model, losses = trained
    assert losses[-1] < 0.1 * losses[0]
    features, transcripts = toy_transcripts(24, seed=1)
    greedy, greedy_scores = greedy_decode(model, features)
    assert transcript_scores(greedy, transcripts)["exact"] >= 80.0
    one, one_scores = beam_search_decode(model, features, beam_width=1)
    assert one == greedy
    np.testing.assert_allclose(one_scores, greedy_scores, rtol=1e-9)
    beams, beam_scores = beam_search_decode(model, features, beam_width=3)
    assert np.all(beam_scores >= greedy_scores - 1e-9)
    assert transcript_scores(beams, transcripts)["exact"] >= 80.0
    np.testing.assert_allclose(sequence_log_probability(model, features, beams), beam_scores, atol=1e-4)
    np.testing.assert_allclose(sequence_log_probability(model, features, greedy), greedy_scores, atol=1e-4)


def test_luong_attention_learns():
    model, losses = train("luong", epochs=25)
    features, transcripts = toy_transcripts(24, seed=1)
    assert losses[-1] < 0.1 * losses[0]
    assert transcript_scores(greedy_decode(model, features)[0], transcripts)["exact"] >= 80.0


def test_trained_model_saves_and_loads(trained, tmp_path):
    model, _ = trained
    features, _ = toy_transcripts(4, seed=2)
    path = str(tmp_path / "transcript.keras")
    model.save(path)
    restored = keras.saving.load_model(path)
    decoded, scores = beam_search_decode(model, features, beam_width=2)
    decoded_again, scores_again = beam_search_decode(restored, features, beam_width=2)
    assert decoded_again == decoded
    np.testing.assert_allclose(scores_again, scores, atol=1e-6)
    assert restored.cfg == model.cfg

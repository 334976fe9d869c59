"""The tf.data pipeline: parsing, padding, sampling, labels."""

import numpy as np
import pytest
import tensorflow as tf

from models import inputs
from models.config import InputConfig
from vidpipe import records, schema

RNG = np.random.default_rng(1)
VIDEOS = [  # (id, labels, number of frames)
    ("short", [1, 3], 3),
    ("long", [0], 15),
    ("empty_labels", [], 6),
    ("dup", [2, 2], 10),
]


def _frames(count):
    return (RNG.integers(0, 256, (count, schema.RGB_SIZE), dtype=np.uint8),
            RNG.integers(0, 256, (count, schema.AUDIO_SIZE), dtype=np.uint8))


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("inputs")
    (root / "frame").mkdir()
    (root / "video").mkdir()
    frames = {}
    with tf.io.TFRecordWriter(str(root / "frame" / "a.tfrecord")) as frame_writer, \
            tf.io.TFRecordWriter(str(root / "video" / "a.tfrecord")) as video_writer:
        for video_id, labels, count in VIDEOS:
            rgb, audio = _frames(count)
            frames[video_id] = (rgb, audio)
            frame_writer.write(records.frame_example(video_id, labels, rgb, audio).SerializeToString())
            video_writer.write(records.video_example(
                video_id, labels, schema.dequantize(rgb).mean(0), schema.dequantize(audio).mean(0)).SerializeToString())
    return root, frames


def _by_id(dataset):
    rows = {}
    for features, labels in dataset:
        for i, video_id in enumerate(features["video_id"].numpy()):
            rows[video_id.decode()] = ({k: v.numpy()[i] for k, v in features.items()}, labels.numpy()[i])
    return rows


def test_frame_batches_are_dequantized_padded_and_truncated(data):
    root, frames = data
    cfg = InputConfig(level="frame", max_frames=10, batch_size=3)
    dataset = inputs.make_dataset(str(root / "frame" / "*.tfrecord"), cfg, num_classes=5, training=False)
    features, labels = next(iter(dataset))
    assert features["rgb"].shape == (3, 10, 1024) and features["audio"].shape == (3, 10, 128)
    assert features["num_frames"].dtype == tf.int32 and labels.shape == (3, 5) and labels.dtype == tf.float32
    rows = _by_id(dataset)
    assert set(rows) == {video_id for video_id, _, _ in VIDEOS}
    for video_id, labels, count in VIDEOS:
        features, multi_hot = rows[video_id]
        kept = min(count, 10)
        assert features["num_frames"] == kept
        np.testing.assert_allclose(features["rgb"][:kept], schema.dequantize(frames[video_id][0][:kept]), atol=1e-6)
        np.testing.assert_allclose(features["audio"][:kept], schema.dequantize(frames[video_id][1][:kept]), atol=1e-6)
        assert not features["rgb"][kept:].any() and not features["audio"][kept:].any()
        expected = np.zeros(5, np.float32)
        expected[labels] = 1.0
        np.testing.assert_array_equal(multi_hot, expected)


def test_random_frame_sampling_draws_true_frames_at_training_only(data):
    root, frames = data
    cfg = InputConfig(level="frame", feature_names=("rgb",), max_frames=10, batch_size=4,
                      sample_random_frames=True, num_sampled_frames=7, shuffle_buffer=4)
    rows = _by_id(inputs.make_dataset(str(root / "frame" / "*.tfrecord"), cfg, 5, training=True, seed=3))
    for video_id, _, count in VIDEOS:
        features, _ = rows[video_id]
        assert "audio" not in features and features["rgb"].shape == (7, 1024) and features["num_frames"] == 7
        true_frames = schema.dequantize(frames[video_id][0][: min(count, 10)])
        for row in features["rgb"]:
            assert np.abs(true_frames - row).max(axis=1).min() < 1e-6
    evaluation = _by_id(inputs.make_dataset(str(root / "frame" / "*.tfrecord"), cfg, 5, training=False))
    assert evaluation["long"][0]["rgb"].shape == (10, 1024)


def test_video_batches(data):
    root, frames = data
    cfg = InputConfig(level="video", batch_size=8)
    rows = _by_id(inputs.make_dataset(str(root / "video" / "*.tfrecord"), cfg, 4, training=True, seed=0))
    features, labels = rows["short"]
    np.testing.assert_allclose(features["mean_rgb"], schema.dequantize(frames["short"][0]).mean(0), atol=1e-6)
    assert features["mean_audio"].shape == (128,)
    np.testing.assert_array_equal(labels, [0, 1, 0, 1])
    np.testing.assert_array_equal(rows["dup"][1], [0, 0, 1, 0])
    np.testing.assert_array_equal(rows["empty_labels"][1], [0, 0, 0, 0])


@pytest.mark.parametrize("level", ["frame", "video"])
def test_out_of_range_labels_raise_or_are_dropped(data, level):
    root, _ = data
    cfg = InputConfig(level=level, max_frames=4, batch_size=8)
    pattern = str(root / level / "*.tfrecord")
    with pytest.raises(tf.errors.InvalidArgumentError, match="labels outside"):
        list(inputs.make_dataset(pattern, cfg, num_classes=3, training=False))
    rows = _by_id(inputs.make_dataset(pattern, cfg, num_classes=3, training=False, out_of_range_labels="drop"))
    np.testing.assert_array_equal(rows["short"][1], [0, 1, 0])
    assert len(rows) == len(VIDEOS)


def test_serving_parser_matches_the_evaluation_pipeline(data):
    root, _ = data
    serialized = list(tf.data.TFRecordDataset(str(root / "frame" / "a.tfrecord")).as_numpy_iterator())
    parsed = inputs.parse_serialized_batch(tf.constant(serialized), "frame", ("rgb", "audio"), 10)
    rows = _by_id(inputs.make_dataset(str(root / "frame" / "*.tfrecord"),
                                      InputConfig(level="frame", max_frames=10), 5, training=False))
    for i, video_id in enumerate(parsed["video_id"].numpy()):
        expected = rows[video_id.decode()][0]
        np.testing.assert_array_equal(parsed["rgb"][i].numpy(), expected["rgb"])
        assert parsed["num_frames"][i] == expected["num_frames"]
    labels = inputs.parse_labels_batch(tf.constant(serialized), "frame").to_list()
    assert labels == [labels for _, labels, _ in VIDEOS]


def test_no_matching_files_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="no record files match"):
        inputs.make_dataset(str(tmp_path / "*.tfrecord"), InputConfig(level="video"), 3, training=False)


def test_training_batches_repeat_exactly_for_a_seed(data):
    root, _ = data
    cfg = InputConfig(level="frame", max_frames=10, batch_size=2, sample_random_frames=True, num_sampled_frames=5,
                      shuffle_buffer=4)
    pattern = str(root / "frame" / "*.tfrecord")

    def batches(seed):
        return [(features["video_id"].numpy().tolist(), features["rgb"].numpy())
                for features, _ in inputs.make_dataset(pattern, cfg, 5, training=True, seed=seed)]

    first, again = batches(3), batches(3)
    assert [ids for ids, _ in first] == [ids for ids, _ in again]
    assert all(np.array_equal(a, b) for (_, a), (_, b) in zip(first, again))
    others = [batches(seed) for seed in (4, 5, 6)]
    assert any(not np.array_equal(np.concatenate([r for _, r in first]), np.concatenate([r for _, r in other]))
               for other in others)


def test_every_level_argument_is_checked_by_the_layout(tmp_path):
    from models import features, synthetic

    serialized = tf.constant([b""])
    for call in (lambda: inputs.parse_labels_batch(serialized, "clip"),
                 lambda: inputs.parse_serialized_batch(serialized, "clip", ("rgb",), 4),
                 lambda: features.model_input_keys("clip", ("rgb",)),
                 lambda: synthetic.write_synthetic_data(str(tmp_path), num_videos=2, levels=("clip",))):
        with pytest.raises(ValueError, match="^level must be one of frame, video, got 'clip'$"):
            call()
    assert not (tmp_path / "clip").exists()

import numpy as np
import tensorflow as tf

from vidpipe import records, schema


def test_quantize_maps_range_ends_and_clips():
    values = np.array([-5.0, -2.0, 0.0, 2.0, 7.0], np.float32)
    np.testing.assert_array_equal(schema.quantize(values), [0, 0, 128, 255, 255])


def test_dequantize_is_the_datasets_formula():
    q = np.array([0, 1, 128, 255], np.uint8)
    expected = q * 4.0 / 255.0 + 4.0 / 512.0 - 2.0
    np.testing.assert_allclose(schema.dequantize(q), expected, rtol=0, atol=1e-6)


def test_round_trip_error_is_within_one_bucket():
    values = np.linspace(-2, 2, 1001, dtype=np.float32)
    error = np.abs(schema.dequantize(schema.quantize(values)) - values)
    assert error.max() <= 4.0 / 255.0


def test_frame_and_video_records_read_back_with_tf_data(tmp_path):
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (5, schema.RGB_SIZE), dtype=np.uint8)
    audio = rng.integers(0, 256, (5, schema.AUDIO_SIZE), dtype=np.uint8)
    frame_path, video_path = str(tmp_path / "f.tfrecord"), str(tmp_path / "v.tfrecord")
    with tf.io.TFRecordWriter(frame_path) as writer:
        writer.write(records.frame_example("vid1", [3, 7], rgb, audio).SerializeToString())
    mean_rgb = rng.normal(size=schema.RGB_SIZE).astype(np.float32)
    with tf.io.TFRecordWriter(video_path) as writer:
        writer.write(records.video_example("vid1", [3, 7], mean_rgb, np.zeros(schema.AUDIO_SIZE)).SerializeToString())

    frame = next(iter(tf.data.TFRecordDataset(frame_path).map(records.parse_frame_example)))
    assert frame["id"].numpy() == b"vid1"
    np.testing.assert_array_equal(frame["labels"].numpy(), [3, 7])
    np.testing.assert_allclose(frame["rgb"].numpy(), schema.dequantize(rgb), atol=1e-6)
    np.testing.assert_allclose(frame["audio"].numpy(), schema.dequantize(audio), atol=1e-6)

    video = next(iter(tf.data.TFRecordDataset(video_path).map(records.parse_video_example)))
    np.testing.assert_allclose(video["mean_rgb"].numpy(), mean_rgb, atol=1e-6)
    assert video["mean_audio"].shape == (schema.AUDIO_SIZE,)


def test_frame_example_rejects_wrong_sizes():
    import pytest

    with pytest.raises(ValueError, match="do not match the schema"):
        records.frame_example("x", [], np.zeros((2, 1000), np.uint8), np.zeros((2, 128), np.uint8))

"""Label statistics of existing YouTube-8M records (ours or the dataset's own shards).

    python -m beam_pipelines.label_stats_pipeline --data DIR [--output DIR] [Beam options]

Reads ``<data>/video/*.tfrecord`` and writes ``<output or data>/label_stats/`` with tf.Transform.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions

from beam_pipelines.label_stats import LABEL_STATS_DIR, LABEL_STATS_FILE, AnalyzeLabels
from vidpipe import schema


def labels_of_video_record(serialized: bytes) -> list[int]:
    """Serialized tf.train.Example -> its label ids."""
    import tensorflow as tf

    example = tf.train.Example.FromString(serialized)
    return list(example.features.feature[schema.LABELS].int64_list.value)


class LabelStatsFromRecords(beam.PTransform):
    """PBegin -> (label, count, weight) rows for the video-level records matching ``pattern``."""

    def __init__(self, pattern: str, output_dir: str | None):
        super().__init__()
        self.pattern = pattern
        self.output_dir = output_dir

    def expand(self, pbegin):
        return (
            pbegin
            | "ReadVideoRecords" >> beam.io.ReadFromTFRecord(self.pattern)
            | "Labels" >> beam.Map(labels_of_video_record)
            | "AnalyzeLabels" >> AnalyzeLabels(self.output_dir)
        )


def run(argv=None, test_pipeline=None) -> dict:
    parser = argparse.ArgumentParser(prog="vidpipe label-stats", description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True, help="directory holding video/*.tfrecord")
    parser.add_argument("--output", help="where label_stats/ goes (default: --data)")
    args, beam_args = parser.parse_known_args(argv)
    output_dir = os.path.join(args.output or args.data, LABEL_STATS_DIR)

    import tensorflow as tf
    import tensorflow_transform.beam as tft_beam

    pattern = schema.video_record_path_pattern(args.data)
    if not tf.io.gfile.glob(pattern):
        raise SystemExit(f"--data {args.data}: no video-level records match {pattern}")
    pipeline = test_pipeline or beam.Pipeline(options=PipelineOptions(beam_args))
    with tempfile.TemporaryDirectory(prefix="vidpipe-tft-") as temp_dir:
        with tft_beam.Context(temp_dir=temp_dir):
            _ = pipeline | "LabelStats" >> LabelStatsFromRecords(pattern, output_dir)
        pipeline.run().wait_until_finish()
    with tf.io.gfile.GFile(os.path.join(output_dir, LABEL_STATS_FILE)) as handle:
        return json.load(handle)


def main(argv=None) -> int:
    stats = run(argv)
    print(json.dumps(stats, indent=2))
    return 0


if __name__ == "__main__":
    from vidpipe.process import exit_after_tft

    exit_after_tft(main)

"""Label statistics of existing YouTube-8M records (ours or the dataset's own shards).

    python -m beam_pipelines.label_stats_pipeline --data DIR [--output DIR] [Beam options]

Reads ``<data>/video/*.tfrecord`` and writes ``<output or data>/label_stats/`` with tf.Transform.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions

from beam_pipelines.label_stats import AnalyzeLabels
from vidpipe import layout, outputs, schema
from vidpipe.cli_args import label_stats_parser


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


STAGE = "label_stats"
OUTPUT_NAMES = frozenset({layout.LABEL_COUNTS_FILE, layout.LABEL_STATS_FILE, layout.LABEL_STATS_TRANSFORM_DIR})


def _analyze(pattern: str, output_dir: str, beam_args: list[str], test_pipeline=None) -> None:
    import tensorflow_transform.beam as tft_beam

    pipeline = test_pipeline or beam.Pipeline(options=PipelineOptions(beam_args))
    with tempfile.TemporaryDirectory(prefix="vidpipe-tft-") as temp_dir:
        with tft_beam.Context(temp_dir=temp_dir):
            _ = pipeline | "LabelStats" >> LabelStatsFromRecords(pattern, output_dir)
        pipeline.run().wait_until_finish()


def run(argv=None, test_pipeline=None) -> dict:
    """Writes ``<output or data>/label_stats/`` and returns its label_stats.json.

    A local folder is built aside and swapped in whole; one that holds files this stage did not write, or
    that another run is writing, is refused.
    """
    parser = label_stats_parser()
    args, beam_args = parser.parse_known_args(argv)
    output_dir = os.path.join(args.output or args.data, layout.LABEL_STATS_DIR)

    import tensorflow as tf

    pattern = layout.record_pattern(args.data, layout.VIDEO_DIR)
    if not tf.io.gfile.glob(pattern):
        raise FileNotFoundError(f"--data {args.data}: no video-level records match {pattern}")
    if outputs.is_remote(output_dir):
        _analyze(pattern, output_dir, beam_args, test_pipeline)
    else:
        final = Path(output_dir).expanduser().absolute()
        data = Path(args.data).expanduser().resolve()
        if data == final.resolve() or final.resolve() in data.parents:
            raise outputs.OutputError(f"--data {args.data} lies inside the output {final}, which label-stats "
                                      f"replaces whole; choose another --output")
        with outputs.staged_dir(final, STAGE, run=os.environ.get("AIRFLOW_CTX_DAG_RUN_ID"),
                                legacy_names=OUTPUT_NAMES) as staged:
            _analyze(pattern, str(staged), beam_args, test_pipeline)
    with tf.io.gfile.GFile(os.path.join(output_dir, layout.LABEL_STATS_FILE)) as handle:
        return json.load(handle)


def main(argv=None) -> int:
    stats = run(argv)
    print(json.dumps(stats, indent=2))
    return 0


if __name__ == "__main__":
    from vidpipe.process import exit_after_tft

    exit_after_tft(main)

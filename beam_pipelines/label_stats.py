"""Label counts of a PCollection of label lists with tensorflow-transform (AnalyzeLabels).

``tft.vocabulary(..., store_frequency=True)`` counts how many videos carry each label; the class weights
and the files under ``label_stats/`` are vidpipe.label_stats' (the one definition), the tf.Transform output
goes to ``label_stats/transform/``.
"""

from __future__ import annotations

import os

import apache_beam as beam

from vidpipe.label_stats import class_weight_rows, write_label_stats
from vidpipe.layout import LABEL_STATS_TRANSFORM_DIR

VOCABULARY_NAME = "labels"
LABELS_KEY = "labels"


def preprocessing_fn(inputs: dict) -> dict:
    """tf.Transform: {labels: sparse int64 [B, None]} -> the same, with a label vocabulary with counts."""
    import tensorflow as tf
    import tensorflow_transform as tft

    labels = tf.sparse.map_values(tf.strings.as_string, inputs[LABELS_KEY])
    tft.vocabulary(labels, vocab_filename=VOCABULARY_NAME, store_frequency=True)
    return {LABELS_KEY: inputs[LABELS_KEY]}


def _read_vocabulary_counts(transform_fn_dir: str) -> dict[int, int]:
    """The vocabulary asset ("count label" lines) -> {label: count}; tf.Transform's filler token is skipped."""
    import tensorflow as tf

    path = os.path.join(transform_fn_dir, "assets", VOCABULARY_NAME)
    counts = {}
    with tf.io.gfile.GFile(path) as vocabulary:
        for line in vocabulary:
            count, label = line.split()
            if label.lstrip("-").isdigit():
                counts[int(label)] = int(float(count))
    return counts


class AnalyzeLabels(beam.PTransform):
    """PCollection[list[int]] (each labeled video's labels) -> PCollection[(label, count, weight)].

    With ``output_dir`` it also writes label_counts.csv, label_stats.json and the transform function.
    Needs an enclosing ``tft_beam.Context(temp_dir=...)``.
    """

    def __init__(self, output_dir: str | None = None):
        super().__init__()
        self.output_dir = output_dir

    def expand(self, label_lists):
        import tensorflow as tf
        import tensorflow_transform.beam as tft_beam
        from tensorflow_transform.tf_metadata import dataset_metadata, schema_utils

        metadata = dataset_metadata.DatasetMetadata(schema_utils.schema_from_feature_spec(
            {LABELS_KEY: tf.io.VarLenFeature(tf.int64)}))
        labeled = label_lists | "KeepLabeled" >> beam.Filter(bool)
        instances = labeled | "ToInstances" >> beam.Map(lambda labels: {LABELS_KEY: [int(x) for x in labels]})
        transform_fn = (instances, metadata) | "AnalyzeVocabulary" >> tft_beam.AnalyzeDataset(preprocessing_fn)
        saved_model_dir, _ = transform_fn
        rows = (
            saved_model_dir
            | "ReadCounts" >> beam.Map(_read_vocabulary_counts)
            | "ClassWeights" >> beam.FlatMap(class_weight_rows)
        )
        if self.output_dir:
            num_videos = labeled | "CountVideos" >> beam.combiners.Count.Globally()
            _ = transform_fn | "WriteTransformFn" >> tft_beam.WriteTransformFn(
                os.path.join(self.output_dir, LABEL_STATS_TRANSFORM_DIR))
            _ = (
                rows
                | "AllRows" >> beam.combiners.ToList()
                | "WriteStats" >> beam.Map(write_label_stats, num_videos=beam.pvalue.AsSingleton(num_videos),
                                            out_dir=self.output_dir)
            )
        return rows

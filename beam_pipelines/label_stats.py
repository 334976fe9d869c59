"""Label vocabulary, counts and class weights with tensorflow-transform.

``tft.vocabulary(..., store_frequency=True)`` counts how many videos carry each label. The class weight
of label i is ``w_i = N / (C * n_i)`` with N the number of label occurrences, C the number of distinct
labels and n_i the count of label i (the re-balancing weight of the YouTube-8M TF2 notebook), so the
weights average to 1 over the training labels.

Written to ``<out>/label_stats/``: ``label_counts.csv`` (label,count,weight), ``label_stats.json``
(num_videos, num_classes, max_label, num_label_occurrences) and the tf.Transform output.
"""

from __future__ import annotations

import json
import os

import apache_beam as beam

LABEL_STATS_DIR = "label_stats"
LABEL_COUNTS_FILE = "label_counts.csv"
LABEL_STATS_FILE = "label_stats.json"
TRANSFORM_SUBDIR = "transform"
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
    import tensorflow as tf

    """Reads the vocabulary asset ("count label" lines); tf.Transform's filler token for an empty vocabulary is skipped."""
    path = os.path.join(transform_fn_dir, "assets", VOCABULARY_NAME)
    counts = {}
    with tf.io.gfile.GFile(path) as vocabulary:
        for line in vocabulary:
            count, label = line.split()
            if label.lstrip("-").isdigit():
                counts[int(label)] = int(float(count))
    return counts


def class_weight_rows(counts: dict[int, int]) -> list[tuple[int, int, float]]:
    """{label: n_i} -> [(label, n_i, N / (C * n_i))] sorted by label."""
    total = sum(counts.values())
    num_classes = len(counts)
    return [(label, n, total / (num_classes * n)) for label, n in sorted(counts.items())]


def write_label_stats(rows: list[tuple[int, int, float]], num_videos: int, out_dir: str) -> dict:
    """(label, count, weight) rows -> label_counts.csv and label_stats.json under ``out_dir``."""
    import tensorflow as tf

    tf.io.gfile.makedirs(out_dir)
    with tf.io.gfile.GFile(os.path.join(out_dir, LABEL_COUNTS_FILE), "w") as csv_file:
        csv_file.write("label,count,weight\n")
        csv_file.write("".join(f"{label},{count},{weight:.8g}\n" for label, count, weight in rows))
    stats = {
        "num_videos": num_videos,
        "num_classes": len(rows),
        "max_label": max((label for label, _, _ in rows), default=-1),
        "num_label_occurrences": sum(count for _, count, _ in rows),
    }
    with tf.io.gfile.GFile(os.path.join(out_dir, LABEL_STATS_FILE), "w") as json_file:
        json.dump(stats, json_file, indent=2)
    return stats


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
            _ = transform_fn | "WriteTransformFn" >> tft_beam.WriteTransformFn(os.path.join(self.output_dir, TRANSFORM_SUBDIR))
            _ = (
                rows
                | "AllRows" >> beam.combiners.ToList()
                | "WriteStats" >> beam.Map(write_label_stats, num_videos=beam.pvalue.AsSingleton(num_videos),
                                            out_dir=self.output_dir)
            )
        return rows

"""Batch prediction on Beam: records -> Kaggle YouTube-8M submission CSV (top k labels per video).

    python -m beam_pipelines.predict --data DIR [--model-dir DIR] --output submission.csv [Beam options]

Without --model-dir the catalog's champion (the latest blessed and promoted model) is used. The records'
level (frame or video) is the model's, read from its export.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import time

import apache_beam as beam
import numpy as np
from apache_beam.options.pipeline_options import PipelineOptions

from vidpipe.submission import PREDICTIONS_HEADER, format_submission_rows

logger = logging.getLogger(__name__)


class PredictBatchFn(beam.DoFn):
    """A batch of serialized records -> submission lines, with the SavedModel loaded once per worker."""

    def __init__(self, export_dir: str, top_k: int):
        self.export_dir = export_dir
        self.top_k = top_k
        self._serving = None

    def setup(self):
        from models.predict import load_serving_fn

        self._serving = load_serving_fn(self.export_dir)

    def process(self, batch: list[bytes]):
        from vidpipe.metrics import top_k_triplets

        outputs = self._serving(batch)
        probabilities = outputs["probabilities"]
        k = min(self.top_k, probabilities.shape[1])
        _, class_idx, score = top_k_triplets(probabilities, k)
        video_ids = [video_id.decode() for video_id in outputs["video_id"]]
        yield from format_submission_rows(video_ids, class_idx.reshape(-1, k), score.reshape(-1, k))


class PredictRecords(beam.PTransform):
    """PBegin -> PCollection of submission lines for every record matching ``pattern``.

    Batches have a fixed size: BatchElements' adaptive small batches make each model call read all the
    weights for a handful of videos (measured 10x slower for a 3862-class MoE).
    """

    def __init__(self, pattern: str, export_dir: str, top_k: int = 20, batch_size: int = 256):
        super().__init__()
        self.pattern = pattern
        self.export_dir = export_dir
        self.top_k = top_k
        self.batch_size = batch_size

    def expand(self, pbegin):
        return (
            pbegin
            | "ReadRecords" >> beam.io.ReadFromTFRecord(self.pattern)
            | "Batch" >> beam.BatchElements(min_batch_size=self.batch_size, max_batch_size=self.batch_size)
            | "Predict" >> beam.ParDo(PredictBatchFn(self.export_dir, self.top_k))
        )


def resolve_model(model_dir: str | None, catalog_url: str | None) -> tuple[str, dict]:
    """--model-dir, or the catalog's champion -> (SavedModel export dir, export metadata)."""
    from models.predict import resolve_export_dir
    from models.train import EXPORT_METADATA

    if not model_dir:
        from vidpipe.catalog import Catalog

        with (Catalog(catalog_url) if catalog_url else Catalog.from_env()) as catalog:
            catalog.ensure_schema()
            champion = catalog.champion()
        if champion is None:
            raise SystemExit("vidpipe predict: no --model-dir given and the catalog has no champion yet "
                             "(train, evaluate and gate a model first)")
        model_dir = champion.model_dir
        logger.info("using champion model version %s from run %s: %s", champion.id, champion.run_id, model_dir)
    export_dir = resolve_export_dir(model_dir)
    with open(os.path.join(export_dir, EXPORT_METADATA)) as handle:
        return export_dir, json.load(handle)


def run(argv=None, test_pipeline=None) -> dict:
    parser = argparse.ArgumentParser(prog="vidpipe predict", description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True, help="directory with frame/ and video/ records")
    parser.add_argument("--output", required=True, help="submission CSV to write")
    parser.add_argument("--model-dir", help="train dir or SavedModel export (default: the catalog's champion)")
    parser.add_argument("--top-k", type=int, default=20, help="labels per video (default 20)")
    parser.add_argument("--batch-size", type=int, default=256, help="records per model call")
    parser.add_argument("--catalog-url", help="SQLAlchemy URL or SQLite path (default: $VIDPIPE_CATALOG_URL)")
    args, beam_args = parser.parse_known_args(argv)

    import tensorflow as tf

    from models.train import record_pattern

    export_dir, metadata = resolve_model(args.model_dir, args.catalog_url)
    pattern = record_pattern(args.data, metadata["level"])
    if not tf.io.gfile.glob(pattern):
        raise SystemExit(f"vidpipe predict: --data {args.data}: no {metadata['level']}-level records match {pattern}")
    started = time.perf_counter()
    pipeline = test_pipeline or beam.Pipeline(options=PipelineOptions(beam_args))
    lines = pipeline | "Predict" >> PredictRecords(pattern, export_dir, args.top_k, args.batch_size)
    _ = lines | "WriteCsv" >> beam.io.WriteToText(
        args.output, header=",".join(PREDICTIONS_HEADER), shard_name_template="", num_shards=1)
    result = pipeline.run()
    result.wait_until_finish()
    with tf.io.gfile.GFile(args.output) as handle:
        num_videos = sum(1 for _ in handle) - 1
    seconds = time.perf_counter() - started
    return {"output": args.output, "model": export_dir, "model_name": metadata.get("model_name"),
            "videos": num_videos, "seconds": round(seconds, 2),
            "videos_per_second": round(num_videos / seconds, 2) if seconds else None}


def main(argv=None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    print(json.dumps(run(argv), indent=2))
    return 0


if __name__ == "__main__":
    from vidpipe.process import exit_after_tft

    exit_after_tft(main)

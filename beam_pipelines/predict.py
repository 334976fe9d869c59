"""Batch prediction on Beam: records -> Kaggle YouTube-8M submission CSV (top k labels per video).

    python -m beam_pipelines.predict --data DIR [--model-dir DIR] --output submission.csv [Beam options]

Without --model-dir the catalog's champion (the latest blessed and promoted model) is used. The records'
level (frame or video) is the model's, read from its export.

Before the pipeline starts every argument is checked, and a model whose feature space differs from the
records' is refused. Each record file is read whole by one worker, so a truncated file fails naming it.
Bad records do not stop the run: a record whose id a CSV cannot carry (vidpipe.schema.video_id_problem), a
record that is not of the model's level, and an id that several records carry with different features are
skipped, counted and listed in the report. Records with label ids outside the model's classes are counted
and warned about (labels are optional here; ``vidpipe evaluate`` refuses them). The CSV is written in a
folder beside --output and swapped in when the pipeline succeeds; a failed run leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import posixpath
import shutil
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions

from vidpipe import layout, outputs
from vidpipe.cli_args import predict_parser
from vidpipe.submission import PREDICTIONS_HEADER, format_submission_rows

logger = logging.getLogger(__name__)

SKIPPED = "skipped"
LABELS_OUTSIDE = "labels_outside"
REPORTED_SKIPS = 100
STAGE = "predict"


def _skipped(video_id: str | None, reason: str) -> str:
    return json.dumps({SKIPPED: {"id": video_id, "reason": reason}}, sort_keys=True)


class PredictFileFn(beam.DoFn):
    """A record file name -> (video_id, (record digest, submission line)) per record, with the SavedModel
    loaded once per worker.

    Tagged outputs, as JSON lines: SKIPPED (records the CSV cannot carry) and LABELS_OUTSIDE (per batch,
    the records carrying label ids >= the model's classes and the largest such id).
    """

    def __init__(self, export_dir: str, top_k: int, batch_size: int):
        self.export_dir = export_dir
        self.top_k = top_k
        self.batch_size = batch_size
        self._serving = None

    def setup(self):
        from models.serving import load_serving_fn

        self._serving = load_serving_fn(self.export_dir)

    def process(self, path: str):
        from models import inputs

        start = 0
        for serialized in inputs.record_batches(path, self.batch_size):
            yield from self._predict(path, start, serialized)
            start += int(serialized.shape[0])

    def _predict(self, path: str, start: int, serialized):
        """serialized [B] string, records start..start+B-1 of ``path`` -> outputs; a batch that fails to parse
        is retried record by record so that only the bad records are skipped."""
        import tensorflow as tf

        from models import inputs
        from models.serving import labels_outside

        try:
            predicted = self._serving(serialized)
            labels = inputs.parse_labels_batch(serialized, self._serving.level)
        except tf.errors.InvalidArgumentError as error:
            if serialized.shape[0] > 1:
                for offset in range(int(serialized.shape[0])):
                    yield from self._predict(path, start + offset, serialized[offset:offset + 1])
                return
            yield beam.pvalue.TaggedOutput(SKIPPED, _skipped(None, (
                f"record {start} of {path} is not a {self._serving.level}-level record "
                f"({inputs.op_error_text(error)})")))
            return
        count, largest = labels_outside(labels, self._serving.num_classes)
        if count:
            yield beam.pvalue.TaggedOutput(LABELS_OUTSIDE, json.dumps({LABELS_OUTSIDE: [count, largest]}))
        yield from self._rows(predicted, serialized.numpy())

    def _rows(self, predicted: dict, serialized):
        """-> (video_id, (record digest, submission line)) per record whose id a CSV can carry."""
        from vidpipe import schema
        from vidpipe.metrics import top_k_triplets

        kept, video_ids = [], []
        for index, raw in enumerate(predicted["video_id"]):
            try:
                video_id = raw.decode("utf-8")
            except UnicodeDecodeError:
                yield beam.pvalue.TaggedOutput(SKIPPED, _skipped(repr(raw), "video id is not UTF-8 text"))
                continue
            problem = schema.video_id_problem(video_id)
            if problem:
                yield beam.pvalue.TaggedOutput(SKIPPED, _skipped(repr(video_id), problem))
                continue
            kept.append(index)
            video_ids.append(video_id)
        if not kept:
            return
        probabilities = predicted["probabilities"][kept]
        k = min(self.top_k, probabilities.shape[1])
        _, class_idx, score = top_k_triplets(probabilities, k)
        class_idx, score = class_idx.reshape(-1, k), score.reshape(-1, k)
        digests = [hashlib.sha1(serialized[index]).hexdigest() for index in kept]
        if len(set(video_ids)) == len(video_ids):
            lines = format_submission_rows(video_ids, class_idx, score)
        else:
            lines = [format_submission_rows([video_id], class_idx[row:row + 1], score[row:row + 1])[0]
                     for row, video_id in enumerate(video_ids)]
        yield from zip(video_ids, zip(digests, lines))


class KeepUniqueIdsFn(beam.DoFn):
    """(video_id, [(record digest, line)]) -> one line per id: copies of the same record count once; an id
    that different records carry is skipped."""

    def process(self, element):
        video_id, scored = element
        scored = list(scored)
        if len({digest for digest, _ in scored}) == 1:
            yield min(line for _, line in scored)
            return
        yield beam.pvalue.TaggedOutput(SKIPPED, _skipped(repr(video_id), (
            f"{len(scored)} records carry video id {video_id!r} with different features; "
            "which one to submit is ambiguous")))


class PredictRecords(beam.PTransform):
    """PCollection of record file names -> {"lines": submission lines, "report": JSON report lines}.

    The report lines count the videos and carry the SKIPPED and LABELS_OUTSIDE entries of PredictFileFn
    and KeepUniqueIdsFn. Files are redistributed before reading, so workers read different files.
    """

    def __init__(self, export_dir: str, top_k: int = 20, batch_size: int = 256):
        super().__init__()
        self.export_dir = export_dir
        self.top_k = top_k
        self.batch_size = batch_size

    def expand(self, files):
        scored = (
            files
            | "SpreadFiles" >> beam.Reshuffle()
            | "Predict" >> beam.ParDo(PredictFileFn(self.export_dir, self.top_k, self.batch_size)).with_outputs(
                SKIPPED, LABELS_OUTSIDE, main="rows"))
        unique = (
            scored.rows
            | "GroupById" >> beam.GroupByKey()
            | "KeepUniqueIds" >> beam.ParDo(KeepUniqueIdsFn()).with_outputs(SKIPPED, main="lines"))
        videos = (
            unique.lines
            | "CountVideos" >> beam.combiners.Count.Globally()
            | "VideosLine" >> beam.Map(lambda count: json.dumps({"videos": count})))
        report = ((videos, scored[SKIPPED], scored[LABELS_OUTSIDE], unique[SKIPPED])
                  | "ReportLines" >> beam.Flatten())
        return {"lines": unique.lines, "report": report}


def resolve_model(model_dir: str | None, catalog_url: str | None) -> tuple[str, dict]:
    """--model-dir, or the catalog's champion -> (SavedModel export dir, export metadata)."""
    import tensorflow as tf

    from models.serving import read_export_metadata, resolve_export_dir

    if model_dir:
        export_dir = resolve_export_dir(model_dir)
    else:
        from vidpipe.catalog import Catalog

        with Catalog.open(catalog_url) as catalog:
            catalog.ensure_schema()
            champion = catalog.champion()
        if champion is None:
            raise ValueError("no --model-dir given and the catalog has no champion yet "
                             "(train, evaluate and gate a model first)")
        named = f"the catalog's champion, model version {champion.id} (run {champion.run_id})"
        if not tf.io.gfile.exists(champion.model_dir):
            raise FileNotFoundError(f"{named}: its model folder {champion.model_dir} no longer exists; "
                                    "pass --model-dir or promote another model")
        try:
            export_dir = resolve_export_dir(champion.model_dir)
        except FileNotFoundError as error:
            raise FileNotFoundError(f"{named}: {error}") from None
        logger.info("using champion model version %s from run %s: %s", champion.id, champion.run_id, export_dir)
    return export_dir, read_export_metadata(export_dir)


def parse_args(argv=None):
    """-> (arguments, Beam options); every argument is checked (ValueError/FileNotFoundError, one line)."""
    parser = predict_parser()
    args, beam_args = parser.parse_known_args(argv)
    if args.top_k < 1:
        raise ValueError(f"--top-k {args.top_k}: must be 1 or more")
    if args.batch_size < 1:
        raise ValueError(f"--batch-size {args.batch_size}: must be 1 or more")
    check_data_dir(args.data)
    check_output_path(args.output)
    return args, beam_args


def check_data_dir(data_dir: str) -> None:
    if outputs.is_remote(data_dir):
        import tensorflow as tf

        exists = tf.io.gfile.isdir(data_dir)
    else:
        exists = os.path.isdir(data_dir)
    if not exists:
        raise FileNotFoundError(f"--data {data_dir}: no such folder")


def check_output_path(output: str) -> None:
    """ValueError unless ``output`` names a file that can be created (remote paths are not checked)."""
    if outputs.is_remote(output):
        return
    if output.endswith(("/", os.sep)):
        raise ValueError(f"--output {output}: names a folder, expected a CSV file path")
    path = Path(output).expanduser().absolute()
    if path.is_dir():
        raise ValueError(f"--output {output}: is a folder, expected a CSV file path")
    if path.exists() and not path.is_file():
        raise ValueError(f"--output {output}: exists and is not a regular file")
    existing = path.parent
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise ValueError(f"--output {output}: {existing} is not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ValueError(f"--output {output}: cannot create files in {existing} (permission denied)")


@contextlib.contextmanager
def staged_output(output: str) -> Iterator[tuple[str, str]]:
    """Yields (work folder, CSV path inside it); on success the CSV replaces ``output``. The work folder goes
    in every case. Local outputs go through vidpipe.outputs.staged_file (lock, atomic swap)."""
    if outputs.is_remote(output):
        import tensorflow as tf

        work = f"{output}.tmp-{uuid.uuid4().hex[:12]}"
        tf.io.gfile.makedirs(work)
        try:
            staged_csv = posixpath.join(work, posixpath.basename(output))
            yield work, staged_csv
            tf.io.gfile.rename(staged_csv, output, overwrite=True)
        finally:
            if tf.io.gfile.exists(work):
                tf.io.gfile.rmtree(work)
        return
    with outputs.staged_file(output, STAGE) as staged:
        work = staged.with_name(f"{staged.name}-work")
        work.mkdir()
        try:
            staged_csv = work / Path(output).name
            yield str(work), str(staged_csv)
            os.replace(staged_csv, staged)
        finally:
            shutil.rmtree(work, ignore_errors=True)


def _skip_order(item: dict) -> tuple[str, str]:
    return item["id"] or "", item["reason"]


def read_report(path: str) -> dict:
    """The report lines written by PredictRecords -> {"videos", "skipped_count", "skipped", "labels_outside"}."""
    import tensorflow as tf

    videos, skipped_count, outside_records, outside_max = 0, 0, 0, None
    skipped = []
    with tf.io.gfile.GFile(path) as handle:
        for line in handle:
            entry = json.loads(line)
            if "videos" in entry:
                videos += entry["videos"]
            elif SKIPPED in entry:
                skipped_count += 1
                skipped.append(entry[SKIPPED])
                if len(skipped) >= 10 * REPORTED_SKIPS:
                    skipped = sorted(skipped, key=_skip_order)[:REPORTED_SKIPS]
            else:
                count, largest = entry[LABELS_OUTSIDE]
                outside_records += count
                outside_max = largest if outside_max is None else max(outside_max, largest)
    listed = sorted(skipped, key=_skip_order)[:REPORTED_SKIPS]
    labels_outside = {"records": outside_records, "max_label": outside_max} if outside_records else None
    return {"videos": videos, "skipped_count": skipped_count, "skipped": listed, "labels_outside": labels_outside}


def run(argv=None, test_pipeline=None) -> dict:
    args, beam_args = parse_args(argv)

    import tensorflow as tf

    from models.serving import check_feature_space

    export_dir, metadata = resolve_model(args.model_dir, args.catalog_url)
    level, num_classes = metadata["level"], int(metadata["num_classes"])
    check_feature_space(export_dir, metadata, args.data)
    pattern = layout.record_pattern(args.data, level)
    files = sorted(tf.io.gfile.glob(pattern))
    if not files:
        raise ValueError(f"--data {args.data}: no {level}-level records match {pattern}")
    if not any(tf.io.gfile.stat(path).length for path in files):
        raise ValueError(f"--data {args.data}: no {level}-level records match {pattern} "
                         f"(its {len(files)} file(s) are empty)")

    started = time.perf_counter()
    with staged_output(args.output) as (work, staged_csv):
        pipeline = test_pipeline or beam.Pipeline(options=PipelineOptions(beam_args))
        predicted = (pipeline
                     | "RecordFiles" >> beam.Create(files)
                     | "Predict" >> PredictRecords(export_dir, args.top_k, args.batch_size))
        _ = predicted["lines"] | "WriteCsv" >> beam.io.WriteToText(
            staged_csv, header=",".join(PREDICTIONS_HEADER), shard_name_template="", num_shards=1)
        report_path = posixpath.join(work, "report.jsonl")
        _ = predicted["report"] | "WriteReport" >> beam.io.WriteToText(
            report_path, shard_name_template="", num_shards=1)
        pipeline.run().wait_until_finish()
        report = read_report(report_path)
        if not report["videos"]:
            if not report["skipped_count"]:
                raise ValueError(f"--data {args.data}: no {level}-level records match {pattern} "
                                 f"(its {len(files)} file(s) hold no records)")
            raise ValueError(f"--data {args.data}: all {report['skipped_count']} records were skipped, "
                             f"e.g. {report['skipped'][0]['reason']}; nothing written")
    seconds = time.perf_counter() - started
    if report["skipped_count"]:
        logger.warning("skipped %d record(s) that a submission CSV cannot carry (listed under 'skipped' in the "
                       "report), e.g. %s", report["skipped_count"], report["skipped"][0]["reason"])
    if report["labels_outside"]:
        logger.warning("%d record(s) of %s carry label ids >= the model's %d classes (largest %d): the model was "
                       "trained on another label space", report["labels_outside"]["records"], args.data,
                       num_classes, report["labels_outside"]["max_label"])
    num_videos = report["videos"]
    return {"output": args.output, "model": export_dir, "model_name": metadata.get("model_name"),
            "videos": num_videos, "skipped_count": report["skipped_count"], "skipped": report["skipped"],
            "labels_outside_model": report["labels_outside"], "seconds": round(seconds, 2),
            "videos_per_second": round(num_videos / seconds, 2) if seconds else None}


def main(argv=None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    print(json.dumps(run(argv), indent=2))
    return 0


if __name__ == "__main__":
    from vidpipe.process import exit_after_tft

    exit_after_tft(main)

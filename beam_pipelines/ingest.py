"""Ingest: raw video files -> YouTube-8M frame and video level TFRecords, label statistics, quarantine.

    python -m beam_pipelines.ingest --input DIR_OR_GLOB --output DIR [--labels CSV] [Beam options]

Stages (each a composite PTransform): DecodeVideos (ffmpeg frames at --fps, audio embedding) ->
ExtractFeatures (InceptionV3 2048-d, or EfficientNet-Lite0 1280-d with --backbone) -> ProjectFeatures
(PCA + whitening to 1024-d with tensorflow-transform, or YouTube-8M's PCA files) -> BuildRecords
(quantize, SequenceExample + Example) -> write shards; AnalyzeLabels (tf.Transform vocabulary and class
weights). Files that cannot be processed go to ``quarantine.csv`` with their reason; the rest are processed.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import logging
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import apache_beam as beam
import numpy as np
from apache_beam.options.pipeline_options import PipelineOptions

from beam_pipelines import audio, decode, pca
from beam_pipelines.features import BACKBONES, INCEPTION_V3, RANDOM_INIT_SEED, BackboneConfig
from beam_pipelines.label_stats import AnalyzeLabels
from vidpipe import feature_space, layout, outputs, schema
from vidpipe.cli_args import ingest_parser
from vidpipe.labels_csv import check_labels_file, parse_label_line

logger = logging.getLogger(__name__)

QUARANTINE_TAG = "quarantine"
RANDOM_INIT_WEIGHTS = f"random-init(seed={RANDOM_INIT_SEED})"


@dataclass(frozen=True)
class IngestConfig:
    """Everything that shapes the records (Beam runner options live apart)."""

    fps: float = 1.0
    max_frames: int = schema.MAX_FRAMES
    backbone: BackboneConfig = field(default_factory=BackboneConfig)
    transform_dir: str | None = None
    pca_dir: str | None = None
    num_shards: int = 0

    @property
    def pca_source(self) -> str:
        if self.pca_dir:
            return f"youtube8m-npy:{self.pca_dir}"
        if self.transform_dir:
            return f"tf.Transform:{self.transform_dir}"
        return "tf.Transform:fitted"


def _timed(element: dict, stage: str, started: float) -> None:
    seconds = element.setdefault("seconds", {})
    seconds[stage] = seconds.get(stage, 0.0) + time.perf_counter() - started


class DecodeVideoFn(beam.DoFn):
    """path -> {video_id, path, frames uint8 [T,S,S,3], audio float32 [T,128], has_audio, duration_s, seconds}.

    Unreadable files go to the ``quarantine`` output as (path, reason).
    """

    def __init__(self, config: IngestConfig):
        self.config = config

    def process(self, path: str):
        with decode.local_file(path) as local_path:
            yield from self._decode(path, local_path)

    def _decode(self, path: str, local_path: str):
        started = time.perf_counter()
        try:
            info = decode.probe(local_path)
            frames = decode.decode_frames(local_path, self.config.fps, self.config.max_frames,
                                          self.config.backbone.input_size)
        except decode.UnreadableVideo as error:
            yield beam.pvalue.TaggedOutput(QUARANTINE_TAG, (path, error.reason))
            return
        except Exception as error:  # noqa: BLE001 - any other failure is still this file's problem alone
            yield beam.pvalue.TaggedOutput(QUARANTINE_TAG, (path, f"unexpected decoding error: {error}"))
            return
        element = {"video_id": decode.video_id_from_path(path), "path": path, "frames": frames,
                   "duration_s": info.duration_s}
        _timed(element, "decode", started)
        started = time.perf_counter()
        samples = None
        if info.has_audio:
            samples = decode.decode_audio(local_path, max_seconds=len(frames) / self.config.fps)
        element["audio"], element["has_audio"] = audio.embed_audio(
            samples, len(frames), decode.AUDIO_SAMPLE_RATE, self.config.fps)
        _timed(element, "audio", started)
        yield element


class ExtractFeaturesFn(beam.DoFn):
    """Adds ``cnn`` float32 [T, F] from the frames, batched through the backbone; drops the pixels."""

    def __init__(self, backbone: BackboneConfig):
        self.backbone = backbone
        self._extractor = None

    def setup(self):
        from beam_pipelines.features import FrameFeatureExtractor

        self._extractor = FrameFeatureExtractor(self.backbone)

    def process(self, element: dict):
        started = time.perf_counter()
        element = dict(element)
        element["cnn"] = self._extractor(element.pop("frames"))
        _timed(element, "cnn", started)
        yield element


class DecodeVideos(beam.PTransform):
    """PCollection[path] -> tagged {main: decoded videos, quarantine: (path, reason)}."""

    def __init__(self, config: IngestConfig):
        super().__init__()
        self.config = config

    def expand(self, paths):
        return (
            paths
            | "Reshuffle" >> beam.Reshuffle()
            | "Decode" >> beam.ParDo(DecodeVideoFn(self.config)).with_outputs(QUARANTINE_TAG, main="videos")
        )


class ExtractFeatures(beam.PTransform):
    """PCollection[decoded video] -> the same with ``cnn`` [T, F] (2048 InceptionV3, 1280 EfficientNet-Lite0)."""

    def __init__(self, backbone: BackboneConfig):
        super().__init__()
        self.backbone = backbone

    def expand(self, videos):
        label = "InceptionV3" if self.backbone.name == INCEPTION_V3 else "EfficientNetLite0"
        return videos | label >> beam.ParDo(ExtractFeaturesFn(self.backbone))


def _frame_instances(element: dict):
    video_id = element["video_id"].encode()
    for index, row in enumerate(element["cnn"]):
        yield {pca.VIDEO_ID_KEY: video_id, pca.FRAME_INDEX_KEY: index, pca.CNN_KEY: row}


def _key_projected(instance: dict):
    video_id = instance[pca.VIDEO_ID_KEY]
    video_id = video_id.decode() if isinstance(video_id, bytes) else str(video_id)
    return video_id, (int(instance[pca.FRAME_INDEX_KEY]), np.asarray(instance[schema.RGB], np.float32))


class ProjectFeatures(beam.PTransform):
    """PCollection[video with cnn] -> PCollection[(video_id, (frame_index, rgb float [1024]))].

    Fits PCA with tf.Transform, and saves the fitted transform under ``transform_output_dir``, unless the
    config names a saved transform or YouTube-8M PCA files. Needs an enclosing ``tft_beam.Context``.
    """

    def __init__(self, config: IngestConfig, transform_output_dir: str | None = None):
        super().__init__()
        self.config = config
        self.transform_output_dir = transform_output_dir

    def expand(self, videos):
        if self.config.pca_dir:
            projection = pca.NumpyPca.load(self.config.pca_dir, self.config.backbone.feature_size)
            return videos | "NumpyPca" >> beam.FlatMap(
                lambda v: ((v["video_id"], (i, row)) for i, row in enumerate(projection(v["cnn"]).astype(np.float32))))

        import tensorflow_transform.beam as tft_beam
        from tensorflow_transform.tf_metadata import dataset_metadata, schema_utils

        metadata = dataset_metadata.DatasetMetadata(schema_utils.schema_from_feature_spec(
            pca.raw_feature_spec(self.config.backbone.feature_size)))
        instances = videos | "FrameInstances" >> beam.FlatMap(_frame_instances)
        if self.config.transform_dir:
            transform_fn = videos.pipeline | "ReadTransformFn" >> tft_beam.ReadTransformFn(self.config.transform_dir)
            transformed, _ = ((instances, metadata), transform_fn) | "ApplyPca" >> tft_beam.TransformDataset(
                output_record_batches=False)
        else:
            (transformed, _), transform_fn = (instances, metadata) | "FitPca" >> tft_beam.AnalyzeAndTransformDataset(
                pca.preprocessing_fn, output_record_batches=False)
            if self.transform_output_dir:
                _ = transform_fn | "WriteTransformFn" >> tft_beam.WriteTransformFn(self.transform_output_dir)
        return transformed | "KeyByVideo" >> beam.Map(_key_projected)


def _video_info(element: dict):
    info = {k: v for k, v in element.items() if k not in ("cnn", "frames")}
    return element["video_id"], info


def build_records(joined):
    """(video_id, {'info': [info], 'frames': [(index, rgb)], 'labels': [ids]}) -> (SequenceExample, Example, stats).

    Ids that only occur in the labels file yield nothing.
    """
    from vidpipe.records import frame_example, video_example

    video_id, groups = joined
    if not groups["info"]:
        return
    if len(groups["labels"]) > 1:
        raise ValueError(f"labels file: video id {video_id!r} has {len(groups['labels'])} rows; "
                         f"give each video one row")
    started = time.perf_counter()
    info = groups["info"][0]
    frames = sorted(groups["frames"], key=lambda pair: pair[0])
    rgb = np.stack([row for _, row in frames]).astype(np.float32)
    audio_features = info["audio"][: len(rgb)]
    video_labels = sorted(groups["labels"][0]) if groups["labels"] else []
    sequence = frame_example(video_id, video_labels, schema.quantize(rgb), schema.quantize(audio_features))
    example = video_example(video_id, video_labels, rgb.mean(axis=0), audio_features.mean(axis=0))
    seconds = dict(info["seconds"])
    seconds["pca_quantize_write"] = time.perf_counter() - started
    stats = {"video_id": video_id, "path": info["path"], "frames": len(rgb), "has_audio": bool(info["has_audio"]),
             "duration_s": info["duration_s"], "labels": video_labels, "seconds": seconds}
    yield sequence.SerializeToString(), example.SerializeToString(), stats


class BuildRecords(beam.PTransform):
    """(video infos, projected frames, (video_id, labels)) keyed by video id -> serialized frame records,
    video records and per-video stats."""

    def expand(self, inputs):
        infos, projected, labels = inputs
        built = (
            {"info": infos, "frames": projected, "labels": labels}
            | "JoinFrames" >> beam.CoGroupByKey()
            | "Quantize" >> beam.FlatMap(build_records)
        )
        return (
            built | "FrameRecords" >> beam.Map(lambda r: r[0]),
            built | "VideoRecords" >> beam.Map(lambda r: r[1]),
            built | "Stats" >> beam.Map(lambda r: r[2]),
        )


def _write_text(path: str, text: str) -> None:
    import tensorflow as tf

    tf.io.gfile.makedirs(os.path.dirname(path))
    with tf.io.gfile.GFile(path, "w") as handle:
        handle.write(text)


def write_quarantine(rows: list[tuple[str, str]], output_dir: str) -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["path", "reason"])
    writer.writerows(sorted(rows))
    _write_text(os.path.join(output_dir, layout.QUARANTINE_FILE), buffer.getvalue())


def summarize(stats: list[dict], quarantined: list[tuple[str, str]], config: IngestConfig, num_inputs: int) -> dict:
    """Per-video stats -> the run summary (counts, frames, worker seconds per stage, warnings).

    ``truncated_videos`` maps each video cut at --max-frames to its full duration in seconds.
    """
    frames = sum(s["frames"] for s in stats)
    seconds: dict[str, float] = {}
    for s in stats:
        for stage, value in s["seconds"].items():
            seconds[stage] = seconds.get(stage, 0.0) + value
    warnings = list(config.backbone.warnings())
    if not config.pca_dir and not config.transform_dir and 0 < frames < schema.RGB_SIZE:
        warnings.append(f"PCA fitted on {frames} frames, fewer than its {schema.RGB_SIZE} output dimensions: "
                        f"components past the data's rank carry no variance and come out as zeros.")
    without_audio = sorted(s["video_id"] for s in stats if not s["has_audio"])
    if without_audio:
        warnings.append(f"{len(without_audio)} video(s) have no audio track; their audio features are zeros: "
                        + ", ".join(without_audio[:10]))
    truncated = {s["video_id"]: round(s["duration_s"], 3) for s in sorted(stats, key=lambda s: s["video_id"])
                 if decode.frames_in_clip(s["duration_s"], config.fps) > config.max_frames}
    if truncated:
        warnings.append(f"{len(truncated)} video(s) longer than {config.max_frames / config.fps:g} s (--max-frames "
                        f"{config.max_frames} at --fps {config.fps:g}) were cut to their first {config.max_frames} "
                        f"frames: " + ", ".join(list(truncated)[:10]))
    return {
        "inputs": num_inputs,
        "processed": len(stats),
        "quarantined": len(quarantined),
        "frames": frames,
        "labeled_videos": sum(1 for s in stats if s["labels"]),
        "videos_without_audio": without_audio,
        "truncated_videos": truncated,
        "worker_seconds_per_stage": {k: round(v, 3) for k, v in sorted(seconds.items())},
        "frames_per_video": {s["video_id"]: s["frames"] for s in sorted(stats, key=lambda s: s["video_id"])},
        "config": {
            "fps": config.fps, "max_frames": config.max_frames, "pca": config.pca_source,
            "backbone": BACKBONES[config.backbone.name].description,
            "backbone_weights": config.backbone.resolved_weights_path() or RANDOM_INIT_WEIGHTS,
            "frame_size": config.backbone.input_size, "audio_embedding": audio.EMBEDDING_NAME,
        },
        "warnings": warnings,
    }


class Ingest(beam.PTransform):
    """PCollection[path] -> writes records, label stats, quarantine.csv and summary.json under output_dir."""

    def __init__(self, output_dir: str, config: IngestConfig, labels_path: str | None,
                 num_inputs: int, pre_quarantined: list[tuple[str, str]] = ()):
        super().__init__()
        self.output_dir = output_dir
        self.config = config
        self.labels_path = labels_path
        self.num_inputs = num_inputs
        self.pre_quarantined = list(pre_quarantined)

    def expand(self, paths):
        pipeline = paths.pipeline
        decoded = paths | "DecodeVideos" >> DecodeVideos(self.config)
        videos = decoded.videos | "ExtractFeatures" >> ExtractFeatures(self.config.backbone)
        projected = videos | "ProjectFeatures" >> ProjectFeatures(
            self.config, os.path.join(self.output_dir, layout.TRANSFORM_DIR))
        if self.labels_path:
            labels = (pipeline
                      | "ReadLabels" >> beam.io.ReadFromText(self.labels_path, skip_header_lines=1)
                      | "SkipBlank" >> beam.Filter(str.strip)
                      | "ParseLabels" >> beam.Map(parse_label_line, labels_path=self.labels_path))
        else:
            labels = pipeline | "NoLabels" >> beam.Create([])
        infos = videos | "VideoInfo" >> beam.Map(_video_info)
        frame_records, video_records, stats = (infos, projected, labels) | "BuildRecords" >> BuildRecords()

        shards = {"num_shards": self.config.num_shards, "file_name_suffix": layout.RECORD_SUFFIX}
        _ = frame_records | "WriteFrames" >> beam.io.WriteToTFRecord(
            os.path.join(self.output_dir, layout.FRAME_DIR, "part"), **shards)
        _ = video_records | "WriteVideos" >> beam.io.WriteToTFRecord(
            os.path.join(self.output_dir, layout.VIDEO_DIR, "part"), **shards)

        label_lists = stats | "VideoLabels" >> beam.Map(lambda s: s["labels"])
        _ = label_lists | "AnalyzeLabels" >> AnalyzeLabels(os.path.join(self.output_dir, layout.LABEL_STATS_DIR))

        quarantined = (
            (decoded[QUARANTINE_TAG], pipeline | "PreQuarantined" >> beam.Create(self.pre_quarantined))
            | "AllQuarantined" >> beam.Flatten()
            | "QuarantineList" >> beam.combiners.ToList()
        )
        _ = quarantined | "WriteQuarantine" >> beam.Map(write_quarantine, output_dir=self.output_dir)
        summary = (
            stats
            | "StatsList" >> beam.combiners.ToList()
            | "Summarize" >> beam.Map(summarize, quarantined=beam.pvalue.AsSingleton(quarantined),
                                      config=self.config, num_inputs=self.num_inputs)
        )
        _ = summary | "WriteSummary" >> beam.Map(
            lambda s: _write_text(os.path.join(self.output_dir, layout.SUMMARY_FILE), json.dumps(s, indent=2)))
        return summary


def split_duplicate_ids(paths: list[str]) -> tuple[list[str], list[tuple[str, str]]]:
    """Input paths (a decode.VideoListing or a plain list) -> (the first file of each video id, quarantined).

    Quarantined (path, reason) holds the entries the listing set aside, then the later files whose video id
    an earlier file already has, so that together the two lists account for every input.
    """
    seen: dict[str, str] = {}
    unique, quarantined = [], list(getattr(paths, "quarantined", ()))
    for path in paths:
        video_id = decode.video_id_from_path(path)
        if video_id in seen:
            quarantined.append((path, f"duplicate video id {video_id!r}: {seen[video_id]} already has it"))
        else:
            seen[video_id] = path
            unique.append(path)
    return unique, quarantined


def parse_args(argv=None) -> tuple[argparse.Namespace, list[str]]:
    """-> (ingest arguments, Beam options)."""
    return ingest_parser().parse_known_args(argv)


def config_from_args(args: argparse.Namespace) -> IngestConfig:
    if args.fps <= 0 or args.max_frames <= 0:
        raise SystemExit("--fps and --max-frames must be positive")
    backbone = BackboneConfig(name=args.backbone, weights_path=args.backbone_weights, input_size=args.frame_size,
                              batch_size=args.cnn_batch_size)
    try:
        backbone.validate_weights()
    except FileNotFoundError as error:
        raise SystemExit(str(error)) from None
    if args.transform_dir:
        pca.check_transform_dir(args.transform_dir, backbone.name, backbone.feature_size)
    return IngestConfig(
        fps=args.fps, max_frames=args.max_frames, transform_dir=args.transform_dir, pca_dir=args.pca_dir,
        num_shards=args.num_shards, backbone=backbone)


STAGE = "ingest"
OUTPUT_NAMES = layout.INGEST_OUTPUT_NAMES | {f".{layout.LABEL_STATS_DIR}.lock"}
_GLOB_CHARACTERS = "*?["


def _static_prefix(pattern: str) -> str:
    """The folder a glob pattern starts from (the pattern itself when it has no wildcard)."""
    cut = next((index for index, character in enumerate(pattern) if character in _GLOB_CHARACTERS), None)
    return pattern if cut is None else os.path.dirname(pattern[:cut]) or "."


def _lies_within(path: str, folder: Path) -> bool:
    resolved = Path(path).expanduser().resolve()
    return resolved == folder or folder in resolved.parents


def check_inputs_outside_output(args: argparse.Namespace, paths: list[str]) -> None:
    """OutputError naming both when an input lies inside --output, which ingest replaces whole.

    --transform-dir may lie inside it: it is read before the swap and carried into the new output.
    """
    named = [("--input", args.input, _static_prefix(args.input))] + [("--input", path, path) for path in paths]
    named += [(option, value, value) for option, value in (
        ("--labels", args.labels), ("--pca-dir", args.pca_dir), ("--backbone-weights", args.backbone_weights)) if value]
    if outputs.is_remote(args.output):
        prefix = args.output.rstrip("/") + "/"
        inside = [(option, value) for option, value, path in named if (path.rstrip("/") + "/").startswith(prefix)]
    else:
        output = Path(args.output).expanduser().resolve()
        inside = [(option, value) for option, value, path in named
                  if not outputs.is_remote(path) and _lies_within(path, output)]
    if inside:
        option, value = inside[0]
        raise outputs.OutputError(f"{option} {value} lies inside --output {args.output}, which ingest replaces "
                                  f"whole; choose an output folder outside the inputs")


def check_legacy_records(output: Path) -> None:
    """OutputError when an unmarked output's frame/ or video/ hold anything but record shards and Beam temp folders.

    An output written before ingest marked its outputs counts as ingest's by its entry names; this makes sure
    a user's own ``video/`` folder of clips is not taken for one.
    """
    if not output.is_dir() or outputs.read_marker(output) is not None:
        return
    for level in (layout.FRAME_DIR, layout.VIDEO_DIR):
        folder = output / level
        if not folder.exists():
            continue
        if not folder.is_dir() or folder.is_symlink():
            raise outputs.OutputError(f"output {output}: {level} is not a folder that vidpipe wrote; "
                                      f"choose an empty or new folder")
        foreign = sorted(entry.name for entry in folder.iterdir()
                         if not (entry.is_file() and entry.name.endswith(layout.RECORD_SUFFIX))
                         and not (entry.is_dir() and entry.name.startswith("beam-temp-")))
        if foreign:
            shown = ", ".join(f"{level}/{name}" for name in foreign[:3])
            more = f" and {len(foreign) - 3} more" if len(foreign) > 3 else ""
            raise outputs.OutputError(f"output {output}: holds files that vidpipe did not write ({shown}{more}); "
                                      f"choose an empty or new folder")


def check_remote_output_unused(output: str) -> None:
    """A remote output is written in place (no swap, no lock), so it must be new or empty."""
    import tensorflow as tf

    if tf.io.gfile.exists(output) and tf.io.gfile.listdir(output):
        raise outputs.OutputError(f"output {output}: not empty; a remote output is written in place, so ingest "
                                  f"only writes into a new or empty folder")


def _weights_digest(backbone: BackboneConfig) -> str:
    weights = backbone.resolved_weights_path()
    return feature_space.digest_file(weights) if weights else RANDOM_INIT_WEIGHTS


def describe_feature_space(config: IngestConfig, output_dir: str) -> dict:
    """The feature space of the records in ``output_dir``; its PCA is the transform or PCA files they were
    projected with (the fitted one under ``output_dir`` when the run fitted it)."""
    pca_folder = config.pca_dir or config.transform_dir or os.path.join(output_dir, layout.TRANSFORM_DIR)
    return feature_space.describe(
        backbone=config.backbone.name, weights=_weights_digest(config.backbone),
        frame_size=config.backbone.input_size, fps=config.fps, max_frames=config.max_frames,
        audio=audio.EMBEDDING_NAME, pca=feature_space.digest_folder(pca_folder))


def _read_text(path: str) -> str:
    import tensorflow as tf

    with tf.io.gfile.GFile(path) as handle:
        return handle.read()


def check_inputs(args: argparse.Namespace) -> tuple[list[str], list[tuple[str, str]]]:
    """Lists --input and checks a local --labels file row by row before any work (the pipeline reads the labels
    itself; this names a bad row's line up front).

    -> (the paths to ingest, (path, reason) for every other input entry; see split_duplicate_ids).
    """
    if args.labels and not outputs.is_remote(args.labels):
        check_labels_file(args.labels)
    paths, quarantined = split_duplicate_ids(decode.list_videos(args.input))
    check_inputs_outside_output(args, paths)
    return paths, quarantined


def _carry_transform_dir(transform_dir: str | None, output: Path, staged: Path) -> None:
    """Copies a --transform-dir that lies inside the output into the staged one, so the swap does not drop it."""
    if transform_dir and not outputs.is_remote(transform_dir) and _lies_within(transform_dir, output.resolve()):
        shutil.copytree(transform_dir, staged / layout.TRANSFORM_DIR)


def _run_pipeline(args: argparse.Namespace, beam_args: list[str], config: IngestConfig, paths: list[str],
                  quarantined: list[tuple[str, str]], output_dir: str, test_pipeline=None) -> dict:
    """Runs the pipeline writing everything under ``output_dir`` (the staging folder of a local output)
    -> the summary, completed with the feature space and the throughput."""
    import tensorflow_transform.beam as tft_beam

    started = time.perf_counter()
    options = PipelineOptions(beam_args)
    pipeline = test_pipeline or beam.Pipeline(options=options)
    with tempfile.TemporaryDirectory(prefix="vidpipe-tft-") as local_tmp:
        temp_dir = options.get_all_options().get("temp_location") or local_tmp
        with tft_beam.Context(temp_dir=temp_dir, force_tf_compat_v1=False):
            _ = (pipeline
                 | "Inputs" >> beam.Create(paths)
                 | "Ingest" >> Ingest(output_dir, config, args.labels, len(paths) + len(quarantined), quarantined))
        pipeline.run().wait_until_finish()

    summary_path = os.path.join(output_dir, layout.SUMMARY_FILE)
    summary = json.loads(_read_text(summary_path))
    if not config.transform_dir and not config.pca_dir:
        pca.write_transform_info(os.path.join(output_dir, layout.TRANSFORM_DIR), config.backbone.name,
                                 config.backbone.feature_size)
    space = describe_feature_space(config, output_dir)
    feature_space.write(output_dir, space)
    wall = round(time.perf_counter() - started, 2)
    summary.update(feature_space=space["id"], wall_seconds=wall,
                   frames_per_second=round(summary["frames"] / wall, 2) if wall else None, output=args.output)
    _write_text(summary_path, json.dumps(summary, indent=2))
    return summary


def run(argv=None, test_pipeline=None) -> dict:
    """Runs the ingest pipeline and returns the summary (also written to <output>/summary.json).

    A local output is built in a staging folder beside it and swapped in whole when the run succeeds; an
    output that holds files ingest did not write, or that another run is writing, is refused up front.
    """
    args, beam_args = parse_args(argv)
    config = config_from_args(args)
    if config.backbone.random_init:
        logger.warning(config.backbone.warnings()[0])
    paths, quarantined = check_inputs(args)
    if outputs.is_remote(args.output):
        check_remote_output_unused(args.output)
        return _run_pipeline(args, beam_args, config, paths, quarantined, args.output, test_pipeline)

    output = Path(args.output).expanduser().absolute()
    check_legacy_records(output)
    with outputs.staged_dir(output, STAGE, run=os.environ.get("AIRFLOW_CTX_DAG_RUN_ID"),
                            legacy_names=OUTPUT_NAMES) as staged:
        _carry_transform_dir(config.transform_dir, output, staged)
        return _run_pipeline(args, beam_args, config, paths, quarantined, str(staged), test_pipeline)


def main(argv=None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    summary = run(argv)
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    from vidpipe.process import exit_after_tft

    exit_after_tft(main)

"""Ingest benchmark: frames/s end to end and per stage, and batched vs one-frame-at-a-time CNN.

    .venv/bin/python bench/bench_ingest.py [--clips 6] [--seconds 10] [--backbone inception_v3|efficientnet_lite0]

Prints figures; asserts nothing about speed.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import tempfile
import time

import numpy as np

from beam_pipelines import audio, decode, ingest
from beam_pipelines.features import BackboneConfig, FrameFeatureExtractor
from beam_pipelines.pca import NumpyPca
from vidpipe import records, schema
from vidpipe.apps.demo.corpus import render_lavfi_clip

SOURCES = ("testsrc", "mandelbrot", "life", "cellauto", "rgbtestsrc", "smptebars")


def make_clips(directory: str, count: int, seconds: int) -> list[str]:
    paths = []
    for index in range(count):
        path = os.path.join(directory, f"clip{index:02d}.mp4")
        render_lavfi_clip(path, SOURCES[index % len(SOURCES)], seconds,
                          f"sine=frequency={200 + 50 * index}:duration={seconds}", size="640x360", rate=25,
                          preset="veryfast")
        paths.append(path)
    return paths


def timed(fn, *args):
    started = time.perf_counter()
    result = fn(*args)
    return result, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clips", type=int, default=6)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--backbone", default="inception_v3", choices=("inception_v3", "efficientnet_lite0"))
    parser.add_argument("--frame-size", type=int, help="default: the backbone's (299 / 224)")
    args = parser.parse_args()
    backbone = BackboneConfig(name=args.backbone, input_size=args.frame_size, batch_size=32)
    args.frame_size = backbone.input_size
    work = tempfile.mkdtemp(prefix="vidpipe-bench-")
    os.makedirs(os.path.join(work, "clips"))
    paths = make_clips(os.path.join(work, "clips"), args.clips, args.seconds)
    print(f"machine: {os.cpu_count()} CPU cores; {args.clips} clips x {args.seconds} s, 640x360 H.264 25 fps, "
          f"backbone {args.backbone} at {args.frame_size} px")

    decoded, decode_s = timed(lambda: [decode.decode_frames(p, 1.0, 300, args.frame_size) for p in paths])
    frames = np.concatenate(decoded)
    n = len(frames)
    _, audio_s = timed(lambda: [audio.embed_audio(decode.decode_audio(p), len(f), decode.AUDIO_SAMPLE_RATE)
                                for p, f in zip(paths, decoded)])
    extractor = FrameFeatureExtractor(backbone)
    extractor(frames[:2])
    cnn, cnn_s = timed(extractor, frames)
    single = FrameFeatureExtractor(dataclasses.replace(backbone, batch_size=1))
    single(frames[:1])
    sample = frames[: min(n, 30)]
    _, single_s = timed(lambda: [single(frame[None]) for frame in sample])
    rng = np.random.default_rng(0)
    components = np.linalg.qr(rng.normal(size=(backbone.feature_size, 1024)))[0].astype(np.float32)
    projection = NumpyPca(cnn.mean(0), components, np.ones(1024, np.float32))
    rgb, pca_s = timed(lambda: schema.quantize(projection(cnn)))
    record_path = os.path.join(work, "bench.tfrecord")

    def write():
        import tensorflow as tf

        with tf.io.TFRecordWriter(record_path) as writer:
            start = 0
            for index, f in enumerate(decoded):
                part = rgb[start:start + len(f)]
                writer.write(records.frame_example(f"v{index}", [index], part,
                                                   np.zeros((len(f), 128), np.uint8)).SerializeToString())
                start += len(f)

    _, write_s = timed(write)
    batched_fps, single_fps = n / cnn_s, len(sample) / single_s
    stages = {"decode (ffmpeg, 1 fps)": n / decode_s, "audio (log-mel)": n / audio_s,
              f"CNN {args.backbone}, batch 32": batched_fps,
              "CNN one frame at a time (youtube-8m extractor style)": single_fps,
              "PCA + quantize": n / pca_s, "SequenceExample build + write": n / write_s}
    print(f"\nper stage, {n} frames:")
    for name, fps in stages.items():
        print(f"  {name:<55} {fps:10.1f} frames/s")
    print(f"  batched / one-at-a-time CNN speed-up: {batched_fps / single_fps:.2f}x")

    summary = ingest.run(["--input", os.path.join(work, "clips"), "--output", os.path.join(work, "out"),
                          "--backbone", args.backbone, "--frame-size", str(args.frame_size)])
    print(f"\nend to end (vidpipe ingest, DirectRunner, tf.Transform PCA fit included): {summary['frames']} frames in "
          f"{summary['wall_seconds']} s = {summary['frames_per_second']} frames/s")
    print("worker seconds per stage:", json.dumps(summary["worker_seconds_per_stage"]))


if __name__ == "__main__":
    from vidpipe.process import exit_after_tft

    exit_after_tft(main)

"""``vidpipe demo``: make a small labeled video corpus and run the whole chain through Airflow.

    vidpipe demo [--home DIR] [--model NAME] [--max-steps N] [--backbone NAME] [--frame-size N] [--max-frames 20]

The corpus (vidpipe.apps.demo.corpus) is made with ffmpeg's lavfi sources: labeled synthetic clips split
train/validate/test, real unlabeled clips and two broken files that ingest quarantines.

The chain runs as a real Airflow run (``airflow dags test vidpipe_pipeline``) against a SQLite
metadata database under ``<home>/airflow`` (default <repo>/.vidpipe/airflow). The catalog is
VIDPIPE_CATALOG_URL when set, else $VIDPIPE_HOME/catalog.db with VIDPIPE_HOME defaulting to <home>.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from vidpipe.apps.demo.airflow_driver import (
    REPO_ROOT,
    latest_manifest,
    run_dag,
    setup_airflow,
)
from vidpipe.apps.demo.corpus import make_corpus
from vidpipe.apps.demo.report import report_text
from vidpipe.layout import (
    BACKBONE_NAMES,
    HOME_ENV,
    LABELED_SPLITS,
    MODEL_NAMES,
    PIPELINE_DAG_ID,
)

DEFAULT_HOME = REPO_ROOT / ".vidpipe"
# 32 training videos: small batches, many epochs (max_steps bounds the run), a higher learning rate.
DEMO_TRAINING = ("input.batch_size=16", "train.num_epochs=1000", "train.base_learning_rate=0.05")
DEMO_BACKBONE = "efficientnet_lite0"


@dataclass(frozen=True)
class DemoSettings:
    home: Path
    model: str
    overrides: tuple[str, ...]
    backbone: str
    frame_size: int | None
    max_frames: int
    min_gap: float
    tolerance: float

    @property
    def airflow_home(self) -> Path:
        return self.home / "airflow"

    @property
    def corpus_dir(self) -> Path:
        return self.home / "demo" / "corpus"

    @property
    def work_root(self) -> Path:
        return self.home / "work"


def parse_args(argv: Sequence[str] | None) -> DemoSettings:
    parser = argparse.ArgumentParser(prog="vidpipe demo", description=__doc__.split("\n\n")[0])
    parser.add_argument("--home", default=str(DEFAULT_HOME),
                        help=f"Airflow home, catalog, corpus and run outputs go under here (default {DEFAULT_HOME})")
    parser.add_argument("--model", default="moe", choices=MODEL_NAMES, help="model to train (default moe)")
    parser.add_argument("--max-steps", type=int, default=400, help="training steps (default 400)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="further training config overrides, e.g. model.num_mixtures=2")
    parser.add_argument("--backbone", default=DEMO_BACKBONE, choices=BACKBONE_NAMES,
                        help="CNN features: efficientnet_lite0 with its packaged ImageNet weights (default), or "
                             "inception_v3 (YouTube-8M's network; randomly initialised without weights)")
    parser.add_argument("--frame-size", type=int, help="CNN input size (default: the backbone's, 224 / 299)")
    parser.add_argument("--max-frames", type=int, default=20, help="frames kept per video (default 20)")
    parser.add_argument("--min-gap", type=float, default=0.5, help="GAP the gate requires (default 0.5)")
    parser.add_argument("--tolerance", type=float, default=0.01,
                        help="how far below the champion's GAP still passes the gate (default 0.01)")
    args = parser.parse_args(argv)
    overrides = [f"train.max_steps={args.max_steps}", *DEMO_TRAINING]
    if args.model == "moe":
        overrides.append("model.num_mixtures=2")
    return DemoSettings(home=Path(args.home).expanduser().resolve(), model=args.model,
                        overrides=tuple(overrides + args.overrides), backbone=args.backbone,
                        frame_size=args.frame_size,
                        max_frames=args.max_frames, min_gap=args.min_gap, tolerance=args.tolerance)


def main(argv: Sequence[str] | None = None) -> int:
    settings = parse_args(argv)
    started = time.time()
    settings.home.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault(HOME_ENV, str(settings.home))
    log_path = settings.home / "demo" / "airflow.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log_path.write_text("")

    print(f"[1/3] Airflow home {settings.airflow_home}: migrating the metadata db, creating the gpu pool", flush=True)
    environment = setup_airflow(settings.airflow_home, log_path)

    print(f"[2/3] making the demo corpus in {settings.corpus_dir}", flush=True)
    corpus = make_corpus(settings.corpus_dir)
    split_counts = ", ".join(f"{split} {len(corpus.ids(split))}" for split in LABELED_SPLITS)
    print(f"      {len(corpus.clips)} labeled clips ({split_counts}), "
          f"{len(corpus.unlabeled)} real + {len(corpus.broken)} broken unlabeled files", flush=True)

    conf = {
        "corpus_dir": str(settings.corpus_dir),
        "work_root": str(settings.work_root),
        "model": settings.model,
        "model_overrides": list(settings.overrides),
        "min_gap": settings.min_gap,
        "tolerance": settings.tolerance,
        "max_frames": settings.max_frames,
        "backbone": settings.backbone,
        "frame_size": settings.frame_size,
    }
    print(f"[3/3] airflow dags test {PIPELINE_DAG_ID} (log: {log_path})", flush=True)
    dag_started = time.time()
    try:
        run_dag(environment, conf, log_path, datetime.now(UTC).replace(microsecond=0))
    except RuntimeError as error:
        print(f"vidpipe demo: {error}", file=sys.stderr, flush=True)
        return 1
    manifest = latest_manifest(settings.work_root, dag_started)
    print(report_text(manifest, corpus, log_path, time.time() - started), flush=True)
    return 0

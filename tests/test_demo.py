"""The demo corpus: every clip labeled once, disjoint splits, audio labels matching the audio tracks."""

from __future__ import annotations

import csv
import json
import subprocess
from pathlib import Path

import pytest

from vidpipe.apps.demo import parse_args
from vidpipe.apps.demo.corpus import (
    NOISE_LABEL,
    TONE_LABEL,
    VISUAL_CLASSES,
    SplitSizes,
    make_corpus,
    plan_clips,
    render_lavfi_clip,
)
from vidpipe.apps.demo.report import chance_gap
from vidpipe.layout import LABELED_SPLITS as SPLITS
from vidpipe.layout import UNLABELED_SPLIT as UNLABELED

SIZES = SplitSizes(train=2, validate=1, test=1)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, packaged_clip):
    return make_corpus(tmp_path_factory.mktemp("demo") / "corpus", SIZES, real_clips=[packaged_clip])


def _labels_csv(path: Path) -> dict[str, list[int]]:
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert rows and list(rows[0]) == ["VideoId", "Labels"]
    return {row["VideoId"]: [int(x) for x in row["Labels"].split()] for row in rows}


def _streams(path: Path) -> dict[str, float]:
    result = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "stream=codec_type:format=duration",
                             "-of", "json", str(path)], capture_output=True, text=True, check=True)
    info = json.loads(result.stdout)
    return {"audio": any(s["codec_type"] == "audio" for s in info["streams"]),
            "video": any(s["codec_type"] == "video" for s in info["streams"]),
            "duration": float(info["format"]["duration"])}


def test_labels_file_covers_exactly_the_labeled_clips(corpus):
    labels = _labels_csv(corpus.labels_csv)
    on_disk = {path.stem for split in SPLITS for path in (corpus.root / split).iterdir()}
    assert set(labels) == on_disk
    assert len(on_disk) == len(VISUAL_CLASSES) * (SIZES.train + SIZES.validate + SIZES.test)
    assert {video_id: tuple(ids) for video_id, ids in labels.items()} == corpus.labels()


def test_splits_are_disjoint_and_each_holds_every_visual_class(corpus):
    ids = {split: {path.stem for path in (corpus.root / split).iterdir()} for split in SPLITS}
    assert not (ids["train"] & ids["validate"] or ids["train"] & ids["test"] or ids["validate"] & ids["test"])
    labels = corpus.labels()
    for split in SPLITS:
        assert len(ids[split]) == len(VISUAL_CLASSES) * SIZES.of(split)
        visual = sorted(label for video_id in ids[split] for label in labels[video_id] if label < len(VISUAL_CLASSES))
        assert visual == sorted(list(range(len(VISUAL_CLASSES))) * SIZES.of(split))


def test_clips_are_real_videos_whose_audio_matches_their_labels(corpus):
    for clip in corpus.clips:
        streams = _streams(corpus.root / clip.split / f"{clip.video_id}.mp4")
        assert streams["video"], clip.video_id
        assert 2.9 <= streams["duration"] <= 4.2, (clip.video_id, streams["duration"])
        has_audio_label = bool({TONE_LABEL, NOISE_LABEL} & set(clip.labels))
        assert streams["audio"] == has_audio_label, clip.video_id
    kinds = {label for clip in corpus.clips for label in clip.labels} - set(range(len(VISUAL_CLASSES)))
    assert kinds == {TONE_LABEL, NOISE_LABEL}
    assert any(len(clip.labels) == 1 for clip in corpus.clips), "some clips must have no audio track"


def test_unlabeled_holds_the_real_clip_and_broken_files(corpus, packaged_clip):
    names = sorted(path.name for path in (corpus.root / UNLABELED).iterdir())
    assert Path(packaged_clip).name in names
    assert len(corpus.broken) == 2 and all(Path(p).parent == corpus.root / UNLABELED for p in corpus.broken)
    for broken in corpus.broken:
        assert subprocess.run(["ffprobe", "-v", "error", broken], check=False, capture_output=True).returncode != 0
    assert not {Path(p).stem for p in corpus.unlabeled} & set(corpus.labels())


def test_the_plan_is_deterministic_and_varied():
    first, again, other = plan_clips(seed=3), plan_clips(seed=3), plan_clips(seed=4)
    assert first == again and first != other
    assert len(first) == len(VISUAL_CLASSES) * 14
    assert len({clip.video_source for clip in first}) == len(first)
    assert len({clip.video_id for clip in first}) == len(first)


def test_chance_gap_sits_near_the_label_prevalence():
    labels = [(visual, TONE_LABEL) for visual in range(4)] * 3
    chance = chance_gap(labels, draws=100)
    assert 2 / 6 - 0.02 < chance < 0.5


def test_demo_defaults_use_full_size_frames_and_capped_clips():
    settings = parse_args([])
    assert settings.backbone == "efficientnet_lite0" and settings.frame_size is None and settings.max_frames == 20
    assert any(override.startswith("train.max_steps=") for override in settings.overrides)


def test_the_clip_builder_sizes_the_source_and_reports_ffmpeg_errors(tmp_path):
    clip = render_lavfi_clip(tmp_path / "bars.mp4", "testsrc", 1, "sine=frequency=440:duration=1", size="64x48", rate=5)
    result = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries",
                             "stream=width,height,r_frame_rate", "-of", "json", str(clip)],
                            capture_output=True, text=True, check=True)
    stream = json.loads(result.stdout)["streams"][0]
    assert (stream["width"], stream["height"], stream["r_frame_rate"]) == (64, 48, "5/1")
    assert _streams(clip)["audio"]
    with pytest.raises(RuntimeError, match="ffmpeg could not make broken.mp4 from nosuchsource"):
        render_lavfi_clip(tmp_path / "broken.mp4", "nosuchsource", 1)


def test_the_demo_offers_the_models_and_backbones_of_the_layout():
    from vidpipe.layout import BACKBONE_NAMES, MODEL_NAMES

    assert parse_args(["--model", MODEL_NAMES[-1], "--backbone", BACKBONE_NAMES[0]]).model == MODEL_NAMES[-1]
    with pytest.raises(SystemExit):
        parse_args(["--model", "no_such_model"])

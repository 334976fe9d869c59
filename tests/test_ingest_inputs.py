"""Every input to ingest is accounted for: listed, or quarantined with its reason; ids and labels checked once."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys

import numpy as np
import pytest

from beam_pipelines import decode, ingest
from beam_pipelines.features import BackboneConfig
from tests.conftest import TEST_FRAME_SIZE
from vidpipe import schema
from vidpipe.kaggle_csv import SubmissionFormatError
from vidpipe.labels_csv import check_labels_file, parse_label_line, read_labels


def _touch(path: str | bytes) -> None:
    with open(path, "wb") as handle:
        handle.write(b"\x00" * 16)


def _make_testsrc(path: str, seconds: float) -> str:
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i",
                    f"testsrc=duration={seconds}:size=64x64:rate=5", "-pix_fmt", "yuv420p", path], check=True)
    return path


@pytest.mark.parametrize("video_id, words", [
    ("a,b", "contains a comma, which a submission CSV cannot carry"),
    ("line\nbreak", "contains a line break"),
    ("carriage\rreturn", "contains a line break"),
    (" padded", "begins or ends with whitespace"),
    ("padded\t", "begins or ends with whitespace"),
    ("tab\tinside", "non-printable character '\\t' (U+0009)"),
    ("nul\x00inside", "non-printable character '\\x00' (U+0000)"),
    ("zero\u200bwidth", "non-printable character '\\u200b' (U+200B)"),
    ('say "hi"', "contains a double quote"),
    ("a/b", "contains '/'"),
    (".hidden", "starts with '.'"),
    ("", "empty video id"),
    ("x" * 256, "is 256 characters long, more than 255"),
    ("bad\udcffbytes", "not valid UTF-8"),
])
def test_video_id_rule_names_the_problem_on_one_line(video_id, words):
    problem = schema.video_id_problem(video_id)
    assert problem is not None and words in problem and "\n" not in problem


@pytest.mark.parametrize("video_id", ["bars", "-_AbC09xyz", "x" * 255, "héllo wörld", "it's.v2", "日本語"])
def test_video_id_rule_accepts_ordinary_ids(video_id):
    assert schema.video_id_problem(video_id) is None


def test_listing_quarantines_file_names_a_csv_cannot_carry(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    for name in ["good.mp4", "a,b.mp4", "line\nbreak.mp4", " padded.mp4", 'quote".mp4', "nul\x01.mp4"]:
        _touch(str(folder / name))
    _touch(os.fsencode(str(folder)) + b"/latin\xff1.mp4")

    listing = decode.list_videos(str(folder))

    assert listing == [str(folder / "good.mp4")]
    reasons = dict(listing.quarantined)
    assert reasons[str(folder / "a,b.mp4")] == "video id 'a,b' contains a comma, which a submission CSV cannot carry"
    assert "line break" in reasons[str(folder / "line\nbreak.mp4")]
    assert "whitespace" in reasons[str(folder / " padded.mp4")]
    assert "double quote" in reasons[str(folder / 'quote".mp4')]
    assert "non-printable character '\\x01'" in reasons[str(folder / "nul\x01.mp4")]
    assert "not valid UTF-8" in reasons[os.fsdecode(os.fsencode(str(folder)) + b"/latin\xff1.mp4")]
    assert len(reasons) == 6


def test_listing_reports_every_entry_that_is_not_an_ingestible_file(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    _touch(str(folder / "good.mp4"))
    _touch(str(folder / "..mp4"))
    _touch(str(folder / ".DS_Store"))
    (folder / "x.mp4").mkdir()
    os.symlink("missing.mp4", folder / "dangling.mp4")
    os.symlink("loop_b.mp4", folder / "loop_a.mp4")
    os.symlink("loop_a.mp4", folder / "loop_b.mp4")
    os.symlink("self.mp4", folder / "self.mp4")
    os.symlink("good.mp4", folder / "alias.mp4")
    os.mkfifo(folder / "pipe.mp4")
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(folder / "sock.mp4"))
    try:
        listing = decode.list_videos(str(folder))
    finally:
        server.close()

    assert listing == [str(folder / "alias.mp4"), str(folder / "good.mp4")]
    reasons = {os.path.basename(path): reason for path, reason in listing.quarantined}
    assert reasons == {
        "..mp4": "hidden file (its name starts with '.'): rename it to ingest it",
        ".DS_Store": "hidden file (its name starts with '.'): rename it to ingest it",
        "x.mp4": "a directory, not a video file (directories in the input are not searched)",
        "dangling.mp4": "broken symbolic link: its target 'missing.mp4' does not exist",
        "loop_a.mp4": "symbolic link loop: following it never reaches a file",
        "loop_b.mp4": "symbolic link loop: following it never reaches a file",
        "self.mp4": "symbolic link loop: following it never reaches a file",
        "pipe.mp4": "not a regular file (a FIFO)",
        "sock.mp4": "not a regular file (a socket)",
    }

    unique, quarantined = ingest.split_duplicate_ids(listing)
    assert unique == [str(folder / "alias.mp4"), str(folder / "good.mp4")]
    assert len(unique) + len(quarantined) == len(os.listdir(folder)) == 11

    by_glob = decode.list_videos(str(folder / "*.mp4"))
    assert by_glob == listing
    assert dict(by_glob.quarantined) == {path: reason for path, reason in listing.quarantined
                                         if not path.endswith(".DS_Store")}


def test_duplicates_are_quarantined_after_the_listing_s_own(tmp_path):
    for name in ["clip.mp4", "clip.mkv", ".clip.mp4"]:
        _touch(str(tmp_path / name))
    unique, quarantined = ingest.split_duplicate_ids(decode.list_videos(str(tmp_path)))
    assert unique == [str(tmp_path / "clip.mkv")]
    assert quarantined == [
        (str(tmp_path / ".clip.mp4"), "hidden file (its name starts with '.'): rename it to ingest it"),
        (str(tmp_path / "clip.mp4"), f"duplicate video id 'clip': {tmp_path / 'clip.mkv'} already has it"),
    ]


def test_an_input_with_nothing_ingestible_is_one_clear_error(tmp_path):
    _touch(str(tmp_path / "a,b.mp4"))
    (tmp_path / "sub.mp4").mkdir()
    with pytest.raises(ValueError, match=r"none of its 2 entries can be ingested, e\.g\. .*a,b\.mp4: video id 'a,b' "
                                         r"contains a comma"):
        decode.list_videos(str(tmp_path))
    with pytest.raises(FileNotFoundError, match="matches no file"):
        decode.list_videos(str(tmp_path / "*.mkv"))


def test_relative_paths_and_globs_work_from_the_working_directory(tmp_path, monkeypatch):
    folder = tmp_path / "odd [dir]"
    (folder / "sub").mkdir(parents=True)
    for name in ["a.mp4", "b.mp4", "notes.txt", "sub/c.mp4"]:
        _touch(str(folder / name))
    monkeypatch.chdir(folder)

    assert decode.list_videos("*.mp4") == [str(folder / "a.mp4"), str(folder / "b.mp4")]
    assert decode.list_videos("./a.mp4") == [str(folder / "a.mp4")]
    assert decode.list_videos("sub/*.mp4") == [str(folder / "sub" / "c.mp4")]
    assert decode.list_videos("sub") == [str(folder / "sub" / "c.mp4")]
    assert decode.list_videos("**/*.mp4") == [str(folder / name) for name in ["a.mp4", "b.mp4", "sub/c.mp4"]]
    here = decode.list_videos(".")
    assert here == [str(folder / name) for name in ["a.mp4", "b.mp4", "notes.txt"]]
    not_searched = "a directory, not a video file (directories in the input are not searched)"
    assert here.quarantined == [(str(folder / "sub"), not_searched)]


def test_label_rows_with_bad_ids_or_out_of_range_labels_name_the_file():
    path = "gs://bucket/labels.csv"
    assert parse_label_line(f"vid,0 {schema.MAX_CLASSES - 1}\n", path) == ("vid", [0, schema.MAX_CLASSES - 1])
    with pytest.raises(ValueError) as error:
        parse_label_line("vid,3 1000000000", path)
    assert str(error.value) == (
        "gs://bucket/labels.csv: bad row 'vid,3 1000000000': label id 1000000000 is outside [0, 100000): the "
        "classifier has one output per class id, so label ids must be class indices below "
        "vidpipe.schema.MAX_CLASSES (YouTube-8M uses 0..3861)")
    with pytest.raises(ValueError, match=r"labels\.csv: bad row 'vid,-1': label id -1 is outside"):
        parse_label_line("vid,-1", path)
    with pytest.raises(ValueError, match=r"labels\.csv: bad row 'a\\tb,1': .*non-printable character '\\t' "
                                         r"\(U\+0009\)"):
        parse_label_line("a\tb,1", path)
    with pytest.raises(ValueError, match=r"labels file: bad row '.x,1': video id '.x' starts with '.'"):
        parse_label_line(".x,1")


def test_read_labels_names_the_line_of_a_huge_label_or_a_bad_id(tmp_path):
    labels = tmp_path / "labels.csv"
    labels.write_text(f"VideoId,Labels\nbars,0 4\ncells,{schema.MAX_CLASSES - 1}\n")
    read_back = {video_id: ids.tolist() for video_id, ids in read_labels(labels).items()}
    assert read_back == {"bars": [0, 4], "cells": [schema.MAX_CLASSES - 1]}

    labels.write_text("VideoId,Labels\nbars,0 4\n\ncells,7 1000000000\n")
    shown = re.escape(str(labels))
    with pytest.raises(SubmissionFormatError, match=rf"^{shown}, line 4: label id 1000000000 is outside \[0, 100000\)"):
        read_labels(labels)
    labels.write_text("VideoId,Labels\nbars,0\nce\x00lls,1\n")
    with pytest.raises(SubmissionFormatError, match=rf"^{shown}, line 3: video id 'ce\\x00lls' contains the non-"):
        read_labels(labels)


def test_the_up_front_check_and_the_pipeline_parse_labels_rows_alike(tmp_path):
    """Ingest checks a local labels file with the same row parser its pipeline applies to every line."""
    labels = tmp_path / "labels.csv"
    shown = re.escape(str(labels))
    labels.write_text("VideoId,Labels\nbars,0 4\n\ncells,\n")
    assert check_labels_file(labels) == 2
    for row, reason in [("cells,7 7", "label 7 appears more than once"), ("cells,1,2", "non-integer label '1,2'"),
                        ("cells,x", "non-integer label 'x'"), ("cells,-1", "label id -1 is outside"),
                        (".cells,1", "video id '.cells' starts with '.'")]:
        labels.write_text(f"VideoId,Labels\nbars,0 4\n\n{row}\n")
        with pytest.raises(SubmissionFormatError, match=rf"^{shown}, line 4: {re.escape(reason)}"):
            check_labels_file(labels)
        with pytest.raises(ValueError, match=rf"^{shown}: bad row {re.escape(repr(row))}: {re.escape(reason)}"):
            parse_label_line(row, str(labels))
    labels.write_text("VideoId,Labels\nbars,0\ncells,1\nbars,2\n")
    with pytest.raises(SubmissionFormatError, match=rf"^{shown}, line 4: duplicate VideoId 'bars' \(first on line 2\)"):
        check_labels_file(labels)
    labels.write_text("Id,Labels\nbars,0\n")
    with pytest.raises(SubmissionFormatError, match=rf"^{shown}, line 1: bad header"):
        check_labels_file(labels)
    labels.write_text("")
    with pytest.raises(SubmissionFormatError, match=rf"^{shown}, line 1: empty file"):
        check_labels_file(labels)


def test_ingest_cli_refuses_a_huge_label_id_before_any_work(clips_dir, tmp_path):
    labels = tmp_path / "labels.csv"
    labels.write_text("VideoId,Labels\nbars,0 4\ncells,1000000000\n")
    result = subprocess.run([sys.executable, "-m", "vidpipe.apps.cli", "ingest", "--input", clips_dir, "--output",
                             str(tmp_path / "out"), "--labels", str(labels)],
                            capture_output=True, text=True, check=False)
    assert result.returncode == 2, result.stderr
    assert f"{labels}, line 3: label id 1000000000 is outside [0, 100000)" in result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "out" / "summary.json").exists()


def test_clips_cut_at_max_frames_are_listed_and_warned_about(tmp_path, ffmpeg_available):
    config = ingest.IngestConfig(fps=1.0, max_frames=2, backbone=BackboneConfig(input_size=TEST_FRAME_SIZE))
    decode_fn = ingest.DecodeVideoFn(config)
    stats = []
    for name, seconds in [("long", 3), ("exact", 2), ("short", 1)]:
        path = _make_testsrc(str(tmp_path / f"{name}.mp4"), seconds)
        (element,) = list(decode_fn.process(path))
        video_id, info = ingest._video_info(element)
        projected = [(index, np.zeros(schema.RGB_SIZE, np.float32)) for index in range(len(element["frames"]))]
        (_, _, video_stats), = ingest.build_records((video_id, {"info": [info], "frames": projected, "labels": []}))
        stats.append(video_stats)
    assert [s["frames"] for s in stats] == [2, 2, 1]

    summary = ingest.summarize(stats, [], config, num_inputs=3)

    assert summary["truncated_videos"] == {"long": 3.0}
    assert ("1 video(s) longer than 2 s (--max-frames 2 at --fps 1) were cut to their first 2 frames: long"
            in summary["warnings"])
    relaxed = ingest.summarize(stats, [], ingest.IngestConfig(fps=1.0, max_frames=3, backbone=config.backbone), 3)
    assert relaxed["truncated_videos"] == {} and not any("were cut" in w for w in relaxed["warnings"])


def test_frames_in_clip_follows_ffmpeg_fps_rounding(tmp_path, ffmpeg_available):
    for seconds in (2.2, 2.8, 4):
        path = _make_testsrc(str(tmp_path / "clip.mp4"), seconds)
        decoded = decode.decode_frames(path, fps=1, max_frames=300, size=16)
        assert decode.frames_in_clip(decode.probe(path).duration_s, fps=1) == len(decoded)
    assert decode.frames_in_clip(0.0, fps=1) == 0


def test_a_video_with_two_label_rows_is_an_error_not_a_silent_pick():
    info = {"path": "/in/vid.mp4", "audio": np.zeros((1, schema.AUDIO_SIZE), np.float32), "has_audio": False,
            "duration_s": 1.0, "seconds": {}}
    groups = {"info": [info], "frames": [(0, np.zeros(schema.RGB_SIZE, np.float32))], "labels": [[1], [2]]}
    with pytest.raises(ValueError, match="labels file: video id 'vid' has 2 rows; give each video one row"):
        list(ingest.build_records(("vid", groups)))

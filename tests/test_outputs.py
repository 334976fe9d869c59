"""The output-safety mechanism shared by every stage (vidpipe.outputs)."""

import json
import multiprocessing
import os
import signal
import time

import pytest

from vidpipe import outputs


def _write(folder, files):
    for name, text in files.items():
        (folder / name).write_text(text)


def test_new_output_appears_whole_with_its_marker(tmp_path):
    final = tmp_path / "out"
    with outputs.staged_dir(final, "ingest", run="r1") as staged:
        _write(staged, {"a.txt": "new"})
        assert not final.exists()
    assert (final / "a.txt").read_text() == "new"
    assert json.loads((final / outputs.MARKER_FILE).read_text())["stage"] == "ingest"
    assert sorted(p.name for p in tmp_path.iterdir()) == [".out.lock", "out"]


def test_rerun_replaces_the_old_output_whole(tmp_path):
    final = tmp_path / "out"
    with outputs.staged_dir(final, "ingest") as staged:
        _write(staged, {"old.txt": "1", "keep.txt": "1"})
    with outputs.staged_dir(final, "ingest") as staged:
        _write(staged, {"keep.txt": "2"})
    assert sorted(p.name for p in final.iterdir()) == [outputs.MARKER_FILE, "keep.txt"]
    assert (final / "keep.txt").read_text() == "2"


def test_failure_keeps_the_previous_output_and_leaves_no_temp(tmp_path):
    final = tmp_path / "out"
    with outputs.staged_dir(final, "ingest") as staged:
        _write(staged, {"a.txt": "good"})
    with pytest.raises(RuntimeError), outputs.staged_dir(final, "ingest") as staged:
        _write(staged, {"a.txt": "half"})
        raise RuntimeError("disk full")
    assert (final / "a.txt").read_text() == "good"
    assert sorted(p.name for p in tmp_path.iterdir()) == [".out.lock", "out"]


def test_foreign_files_are_never_replaced(tmp_path):
    final = tmp_path / "corpus"
    final.mkdir()
    (final / "holiday.mp4").write_bytes(b"precious")
    with pytest.raises(outputs.OutputError, match=r"holds files that vidpipe did not write \(holiday.mp4\)"):
        with outputs.staged_dir(final, "ingest"):
            pass
    assert (final / "holiday.mp4").read_bytes() == b"precious"


def test_another_stage_output_is_refused(tmp_path):
    final = tmp_path / "out"
    with outputs.staged_dir(final, "predict"):
        pass
    with pytest.raises(outputs.OutputError, match="written by the 'predict' stage"):
        with outputs.staged_dir(final, "ingest"):
            pass


def test_legacy_output_without_marker_is_owned(tmp_path):
    final = tmp_path / "out"
    (final / "frame").mkdir(parents=True)
    (final / "summary.json").write_text("{}")
    with outputs.staged_dir(final, "ingest", legacy_names={"frame", "video", "summary.json"}) as staged:
        _write(staged, {"summary.json": "{\"new\": 1}"})
    assert not (final / "frame").exists()


def _hold_lock(final, ready, release):
    with outputs.staged_dir(final, "ingest", run="first-run"):
        ready.set()
        release.wait(30)


def test_a_second_run_is_refused_naming_the_first(tmp_path):
    final = tmp_path / "out"
    context = multiprocessing.get_context("spawn")
    ready, release = context.Event(), context.Event()
    holder = context.Process(target=_hold_lock, args=(final, ready, release))
    holder.start()
    try:
        assert ready.wait(30)
        with pytest.raises(outputs.OutputError, match=f"another run is writing it .*first-run.*pid {holder.pid}"):
            with outputs.staged_dir(final, "ingest", run="second-run"):
                pass
    finally:
        release.set()
        holder.join(30)


def _crash_inside(final, ready):
    with outputs.staged_dir(final, "ingest") as staged:
        (staged / "partial.txt").write_text("half")
        ready.set()
        time.sleep(60)


def test_rerun_after_kill_just_works(tmp_path):
    final = tmp_path / "out"
    with outputs.staged_dir(final, "ingest") as staged:
        _write(staged, {"a.txt": "good"})
    context = multiprocessing.get_context("spawn")
    ready = context.Event()
    victim = context.Process(target=_crash_inside, args=(final, ready))
    victim.start()
    assert ready.wait(30)
    os.kill(victim.pid, signal.SIGKILL)
    victim.join(30)
    assert (final / "a.txt").read_text() == "good"
    assert any(".tmp-" in p.name for p in tmp_path.iterdir())
    with outputs.staged_dir(final, "ingest") as staged:
        _write(staged, {"a.txt": "again"})
    assert (final / "a.txt").read_text() == "again"
    assert sorted(p.name for p in tmp_path.iterdir()) == [".out.lock", "out"]


def test_swap_moved_aside_is_restored_after_a_crash(tmp_path):
    final = tmp_path / "out"
    with outputs.staged_dir(final, "ingest") as staged:
        _write(staged, {"a.txt": "good"})
    os.rename(final, tmp_path / ".out.old-123")
    with pytest.raises(RuntimeError), outputs.staged_dir(final, "ingest"):
        raise RuntimeError("stop")
    assert (final / "a.txt").read_text() == "good"


def test_staged_file_replaces_atomically_and_keeps_old_on_failure(tmp_path):
    final = tmp_path / "submission.csv"
    outputs.write_text_atomically(final, "v1\n", "predict")
    with pytest.raises(RuntimeError), outputs.staged_file(final, "predict") as staged:
        staged.write_text("half")
        raise RuntimeError("crash")
    assert final.read_text() == "v1\n"
    outputs.write_text_atomically(final, "v2\n", "predict")
    assert final.read_text() == "v2\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == [".submission.csv.lock", "submission.csv"]

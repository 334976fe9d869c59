"""Video decoding with ffmpeg: probe, frames at a fixed rate, and the audio track.

Every failure is raised as :class:`UnreadableVideo` carrying a reason a person understands, so the
pipeline can quarantine the file and carry on with the rest.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from dataclasses import dataclass

import ffmpeg
import numpy as np

VIDEO_EXTENSIONS = (".mp4", ".avi", ".mkv", ".mov", ".webm", ".m4v", ".mpg", ".mpeg", ".flv", ".wmv", ".3gp", ".ts")
AUDIO_SAMPLE_RATE = 16_000

_FFMPEG_MESSAGES = (
    ("moov atom not found", "truncated or incomplete file: the MP4 index (moov atom) is missing"),
    ("Invalid data found when processing input", "not a video: ffmpeg found no readable container"),
    ("End of file", "truncated file: it ends before the container header is complete"),
    ("Permission denied", "cannot read the file: permission denied"),
)


class UnreadableVideo(Exception):
    """A video that cannot be processed; ``reason`` is meant for the quarantine list."""

    def __init__(self, path: str, reason: str):
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


@dataclass(frozen=True)
class VideoInfo:
    path: str
    duration_s: float
    width: int
    height: int
    has_audio: bool


def video_id_from_path(path: str) -> str:
    """The YouTube-8M style id: the file name without its extension."""
    return os.path.splitext(os.path.basename(path))[0]


def list_videos(input_path: str) -> list[str]:
    """A directory (its files, sorted) or a glob pattern (every match, sorted) -> paths.

    Local paths and any filesystem Beam knows (gs://, s3://, hdfs://) work alike.
    """
    from apache_beam.io.filesystems import FileSystems

    pattern = input_path
    if os.path.isdir(input_path) or (is_remote(input_path) and input_path.endswith("/")):
        pattern = FileSystems.join(input_path.rstrip("/"), "*")
    try:
        matches = FileSystems.match([pattern])[0].metadata_list
    except Exception:  # noqa: BLE001 - Beam raises BeamIOError or IOError per filesystem for "nothing there"
        matches = []
    paths = sorted(m.path for m in matches if not os.path.basename(m.path).startswith(".")
                   and not (not is_remote(m.path) and os.path.isdir(m.path)))
    if not paths:
        raise FileNotFoundError(f"--input {input_path!r}: no such directory and the pattern matches no file")
    return paths


def is_remote(path: str) -> bool:
    return "://" in path


@contextlib.contextmanager
def local_file(path: str):
    """``path`` itself when local; a temporary local copy of a remote (gs://, s3://, ...) file otherwise."""
    if not is_remote(path):
        yield path
        return
    from apache_beam.io.filesystems import FileSystems

    suffix = os.path.splitext(path)[1]
    with tempfile.NamedTemporaryFile(suffix=suffix) as local, FileSystems.open(path) as remote:
        shutil.copyfileobj(remote, local)
        local.flush()
        yield local.name


def _explain_ffmpeg_error(stderr: bytes | None) -> str:
    text = (stderr or b"").decode("utf-8", errors="replace")
    for needle, reason in _FFMPEG_MESSAGES:
        if needle in text:
            return reason
    last = [line for line in text.strip().splitlines() if line.strip()]
    return f"ffmpeg could not read it ({last[-1].strip() if last else 'no message'})"


def probe(path: str) -> VideoInfo:
    """Container facts for ``path``; raises UnreadableVideo for empty, non-video or broken files."""
    if not os.path.exists(path):
        raise UnreadableVideo(path, "file does not exist")
    if os.path.getsize(path) == 0:
        raise UnreadableVideo(path, "empty file (0 bytes)")
    try:
        info = ffmpeg.probe(path)
    except ffmpeg.Error as error:
        reason = _explain_ffmpeg_error(error.stderr)
        if "moov atom" in reason and not _looks_like_mp4(path):
            reason = "not a video: the content is not an MP4/QuickTime container (no 'ftyp' header)"
        raise UnreadableVideo(path, reason) from None
    streams = info.get("streams", [])
    video = [s for s in streams if s.get("codec_type") == "video" and s.get("disposition", {}).get("attached_pic", 0) == 0]
    if not video:
        kinds = sorted({s.get("codec_type", "unknown") for s in streams}) or ["none"]
        raise UnreadableVideo(path, f"no video stream (streams found: {', '.join(kinds)})")
    duration = _duration(info, video[0])
    return VideoInfo(
        path=path,
        duration_s=duration,
        width=int(video[0].get("width", 0)),
        height=int(video[0].get("height", 0)),
        has_audio=any(s.get("codec_type") == "audio" for s in streams),
    )


def _looks_like_mp4(path: str) -> bool:
    with open(path, "rb") as handle:
        header = handle.read(12)
    return header[4:8] in (b"ftyp", b"moov", b"mdat", b"wide", b"free", b"skip")


def _duration(info: dict, stream: dict) -> float:
    for value in (stream.get("duration"), info.get("format", {}).get("duration")):
        try:
            if value is not None and float(value) > 0:
                return float(value)
        except ValueError:
            continue
    return 0.0


def decode_frames(path: str, fps: float = 1.0, max_frames: int = 300, size: int = 299) -> np.ndarray:
    """Frames sampled at ``fps`` and resized to ``size``x``size`` RGB -> uint8 [T, size, size, 3].

    ffmpeg skips packets it cannot decode and goes on; only a file that yields no frame at all fails.
    """
    stream = ffmpeg.input(path, err_detect="ignore_err").video.filter("fps", fps=fps).filter("scale", size, size)
    try:
        raw, stderr = (
            stream.output("pipe:", format="rawvideo", pix_fmt="rgb24", frames=max_frames)
            .global_args("-nostdin", "-loglevel", "error")
            .run(capture_stdout=True, capture_stderr=True)
        )
    except ffmpeg.Error as error:
        raw, stderr = error.stdout or b"", error.stderr
        if len(raw) < size * size * 3:
            raise UnreadableVideo(path, "undecodable video stream: " + _explain_ffmpeg_error(stderr)) from None
    frame_bytes = size * size * 3
    count = min(len(raw) // frame_bytes, max_frames)
    if count == 0:
        raise UnreadableVideo(path, "truncated or undecodable: no frame could be decoded")
    return np.frombuffer(raw[: count * frame_bytes], np.uint8).reshape(count, size, size, 3)


def decode_audio(path: str, sample_rate: int = AUDIO_SAMPLE_RATE, max_seconds: float | None = None) -> np.ndarray | None:
    """The first audio track as mono float32 samples in [-1, 1] -> [S]; None when nothing decodes."""
    kwargs = {"t": max_seconds} if max_seconds else {}
    try:
        raw, _ = (
            ffmpeg.input(path, err_detect="ignore_err", **kwargs)
            .audio.output("pipe:", format="f32le", ac=1, ar=sample_rate)
            .global_args("-nostdin", "-loglevel", "error")
            .run(capture_stdout=True, capture_stderr=True)
        )
    except ffmpeg.Error as error:
        raw = error.stdout or b""
    samples = np.frombuffer(raw[: len(raw) // 4 * 4], np.float32)
    return samples if samples.size else None

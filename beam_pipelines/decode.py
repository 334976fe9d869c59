"""Video decoding with ffmpeg: probe, frames at a fixed rate, and the audio track.

Every failure is raised as :class:`UnreadableVideo` carrying a reason a person understands, so the
pipeline can quarantine the file and carry on with the rest.
"""

from __future__ import annotations

import contextlib
import errno
import glob
import math
import os
import shutil
import stat
import tempfile
from dataclasses import dataclass

import ffmpeg
import numpy as np

from vidpipe.outputs import is_remote

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


class VideoListing(list):
    """The input's ingestible paths, sorted (a plain list of str), plus ``quarantined``: (path, reason) for
    every other entry the input named, so no input goes unaccounted for."""

    def __init__(self, paths=(), quarantined=()):
        super().__init__(paths)
        self.quarantined: list[tuple[str, str]] = list(quarantined)


def list_videos(input_path: str) -> VideoListing:
    """A directory (its entries, sorted) or a glob pattern (every match, sorted) -> VideoListing.

    Local paths and patterns may be relative to the working directory; they come back absolute. Any
    filesystem Beam knows (gs://, s3://, hdfs://) works too. Every entry listed is either returned or
    quarantined with its reason: a directory (inputs are not searched recursively, except by a ``**``
    pattern), a broken symbolic link or a link loop, a socket, FIFO or device, a hidden file (name starting
    with '.'), or a file name whose video id breaks schema.video_id_problem (comma, line break, ...).
    Raises FileNotFoundError when nothing matches, ValueError when nothing listed can be ingested.
    """
    if is_remote(input_path):
        entries = _list_remote(input_path)
    else:
        entries = _list_local(input_path)
    if not entries:
        raise FileNotFoundError(f"--input {input_path!r}: no such directory and the pattern matches no file")
    listing = VideoListing()
    for path, problem in sorted(entries, key=lambda entry: entry[0]):
        problem = problem or _name_problem(path)
        if problem:
            listing.quarantined.append((path, problem))
        else:
            listing.append(path)
    if not listing:
        path, reason = listing.quarantined[0]
        raise ValueError(f"--input {input_path!r}: none of its {len(entries)} entries can be ingested, "
                         f"e.g. {path}: {reason}")
    return listing


def _name_problem(path: str) -> str | None:
    from vidpipe import schema

    if os.path.basename(path).startswith("."):
        return "hidden file (its name starts with '.'): rename it to ingest it"
    return schema.video_id_problem(video_id_from_path(path))


def _list_local(input_path: str) -> list[tuple[str, str | None]]:
    """-> [(absolute path, why it is not a regular file or None)] for a directory's entries or a pattern's matches."""
    path = os.path.expanduser(input_path)
    if os.path.isdir(path):
        try:
            with os.scandir(os.path.abspath(path)) as entries:
                return [(entry.path, _not_a_file(entry.path)) for entry in entries]
        except OSError as error:
            raise ValueError(f"--input {input_path!r}: cannot list the directory: {error.strerror}") from None
    pattern = path if os.path.isabs(path) else os.path.join(glob.escape(os.getcwd()), path)
    recursive = "**" in pattern
    matches = glob.glob(pattern, recursive=recursive, include_hidden=True)
    listed = []
    for match in matches:
        problem = _not_a_file(match)
        if recursive and problem and os.path.isdir(match):
            continue
        listed.append((os.path.normpath(match), problem))
    return listed


def _not_a_file(path: str) -> str | None:
    try:
        mode = os.stat(path).st_mode
    except OSError as error:
        if not os.path.islink(path):
            return f"cannot read it: {error.strerror}"
        if error.errno == errno.ELOOP:
            return "symbolic link loop: following it never reaches a file"
        if error.errno == errno.ENOENT:
            return f"broken symbolic link: its target {os.readlink(path)!r} does not exist"
        return f"symbolic link to {os.readlink(path)!r}, which cannot be read: {error.strerror}"
    if stat.S_ISDIR(mode):
        return "a directory, not a video file (directories in the input are not searched)"
    if not stat.S_ISREG(mode):
        kind = "socket" if stat.S_ISSOCK(mode) else "FIFO" if stat.S_ISFIFO(mode) else "device"
        return f"not a regular file (a {kind})"
    return None


def _list_remote(input_path: str) -> list[tuple[str, str | None]]:
    from apache_beam.io.filesystems import FileSystems

    pattern = FileSystems.join(input_path.rstrip("/"), "*") if input_path.endswith("/") else input_path
    try:
        matches = FileSystems.match([pattern])[0].metadata_list
    except Exception:  # noqa: BLE001 - Beam raises BeamIOError or IOError per filesystem for "nothing there"
        matches = []
    return [(m.path, None) for m in matches]


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
    video = [s for s in streams
             if s.get("codec_type") == "video" and s.get("disposition", {}).get("attached_pic", 0) == 0]
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


def frames_in_clip(duration_s: float, fps: float) -> int:
    """Frames decode_frames yields for a clip of ``duration_s`` seconds before ``max_frames`` applies:
    ffmpeg's fps filter rounds the clip's length to the nearest frame (0 when the duration is unknown)."""
    return math.floor(duration_s * fps + 0.5) if duration_s > 0 else 0


def decode_frames(path: str, fps: float = 1.0, max_frames: int = 300, size: int = 299) -> np.ndarray:
    """Frames sampled at ``fps`` and resized to ``size``x``size`` RGB -> uint8 [T, size, size, 3], T <= max_frames.

    A clip with more frames (``frames_in_clip(duration, fps) > max_frames``) is cut to its first max_frames;
    the ingest summary lists such clips. ffmpeg skips packets it cannot decode and goes on; only a file that
    yields no frame at all fails.
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


def decode_audio(path: str, sample_rate: int = AUDIO_SAMPLE_RATE,
                 max_seconds: float | None = None) -> np.ndarray | None:
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

"""Action segmentation data sets as MS-TCN distributes them, and their prediction files.

Layout of a data set folder (Breakfast, 50Salads, GTEA in MS-TCN's release)::

    features/<video>.npy              float [D, T] (D = 2048 I3D features), one column per frame
    groundTruth/<video>.txt           one action name per line, one line per frame
    mapping.txt                       "<index> <name>" per line, indices 0..C-1
    splits/train.split1.bundle        one "<video>.txt" per line (test.split1.bundle, ...)

Prediction files are MS-TCN's result format (a header line ``### Frame level recognition: ###`` then the
frame labels separated by spaces) or one label per line; either is read, MS-TCN's is written.
UCF-101's ``classInd.txt`` ("<index> <name>", indices from 1) is read here too.

Every reader raises ValueError (or FileNotFoundError) naming the file or video and the reason.
"""

from __future__ import annotations

import json
import os
import tempfile
import warnings
from collections.abc import Hashable, Iterable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from vidpipe.segmentation.metrics import segments

RESULT_HEADER = "### Frame level recognition: ###"
FEATURES_DIR = "features"
GROUND_TRUTH_DIR = "groundTruth"
MAPPING_FILE = "mapping.txt"
SPLITS_DIR = "splits"


class LengthMismatchWarning(UserWarning):
    """A video's features and ground truth have different frame counts; both were cut to the shorter."""


def _read_text(path: str) -> str:
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: no such file")
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read()
    except UnicodeDecodeError as error:
        raise ValueError(f"{path}: not UTF-8 text ({error.reason} at byte {error.start})") from None


def write_text_atomically(path: str, text: str) -> None:
    """Writes ``text`` to a temporary file beside ``path`` and renames it over ``path``."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    handle, staged = tempfile.mkstemp(dir=folder, prefix=f".{os.path.basename(path)}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.write(text)
        os.replace(staged, path)
    except BaseException:
        if os.path.exists(staged):
            os.unlink(staged)
        raise


def _read_index_file(path: str, first_index: int) -> list[str]:
    """Lines "<index> <name>" with indices first_index, first_index + 1, ... (any order) -> names by index."""
    names: dict[int, str] = {}
    for number, line in enumerate(_read_text(path).splitlines(), start=1):
        if not line.strip():
            continue
        parts = line.split(maxsplit=1)
        if len(parts) != 2:
            raise ValueError(f"{path}:{number}: expected '<index> <name>', got {line.strip()!r}")
        try:
            index = int(parts[0])
        except ValueError:
            raise ValueError(f"{path}:{number}: index {parts[0]!r} is not an integer") from None
        name = parts[1].strip()
        if index in names:
            raise ValueError(f"{path}:{number}: index {index} appears twice")
        if name in names.values():
            raise ValueError(f"{path}:{number}: name {name!r} appears twice")
        names[index] = name
    if not names:
        raise ValueError(f"{path}: no classes")
    expected = list(range(first_index, first_index + len(names)))
    if sorted(names) != expected:
        missing = sorted(set(expected) - set(names))
        raise ValueError(f"{path}: indices must run {first_index}..{expected[-1]}; missing {missing[:5]}")
    return [names[index] for index in expected]


def read_mapping(path: str) -> list[str]:
    """MS-TCN ``mapping.txt`` ("<index> <name>", 0-based) -> class names, names[i] for class i."""
    return _read_index_file(path, first_index=0)


def read_class_index(path: str) -> list[str]:
    """UCF-101 ``classInd.txt`` ("<index> <name>", 1-based) -> class names, names[i] for class i (= index - 1)."""
    return _read_index_file(path, first_index=1)


def video_name(entry: str) -> str:
    """"P03_cam01_P03_cereals.txt" -> "P03_cam01_P03_cereals" (a bundle line or a file name)."""
    entry = os.path.basename(entry.strip())
    return entry.removesuffix(".txt")


def read_bundle(path: str) -> list[str]:
    """A split file (one "<video>.txt" per line) -> video names without extension, in file order."""
    videos = []
    seen = set()
    for number, line in enumerate(_read_text(path).splitlines(), start=1):
        if not line.strip():
            continue
        name = video_name(line)
        if name in seen:
            raise ValueError(f"{path}:{number}: video {name!r} is listed twice")
        seen.add(name)
        videos.append(name)
    if not videos:
        raise ValueError(f"{path}: lists no video")
    return videos


def read_frame_labels(path: str) -> list[str]:
    """A ground-truth file (one label per line, one line per frame) -> labels [T]."""
    lines = _read_text(path).splitlines()
    while lines and not lines[-1].strip():
        lines.pop()
    if not lines:
        raise ValueError(f"{path}: no frame labels")
    labels = []
    for number, line in enumerate(lines, start=1):
        label = line.strip()
        if not label:
            raise ValueError(f"{path}:{number}: empty line where a frame label belongs")
        if len(label.split()) != 1:
            raise ValueError(f"{path}:{number}: expected one label per line, got {label!r}")
        labels.append(label)
    return labels


def read_predictions(path: str) -> list[str]:
    """A prediction file -> labels [T]: MS-TCN's result format or one label per line."""
    text = _read_text(path)
    first_line, _, rest = text.partition("\n")
    if first_line.strip().startswith("###"):
        labels = rest.split()
        if not labels:
            raise ValueError(f"{path}: no frame labels after the header {first_line.strip()!r}")
        return labels
    return read_frame_labels(path)


def format_predictions(labels: Sequence[str]) -> str:
    """Frame labels [T] -> MS-TCN's result file text."""
    labels = [str(label) for label in labels]
    for label in labels:
        if not label or len(label.split()) != 1:
            raise ValueError(f"label {label!r} cannot be written: labels must be non-empty and without spaces")
    return f"{RESULT_HEADER}\n{' '.join(labels)}\n"


def write_predictions(path: str, labels: Sequence[str]) -> None:
    """Writes frame labels [T] in MS-TCN's result format (atomically)."""
    write_text_atomically(path, format_predictions(labels))


def read_features(path: str) -> np.ndarray:
    """An MS-TCN ``<video>.npy`` -> float32 [D, T] (never unpickles)."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: no such file")
    try:
        array = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as error:
        raise ValueError(f"{path}: not a numpy array file ({error})") from None
    if not isinstance(array, np.ndarray) or array.ndim != 2:
        raise ValueError(f"{path}: expected a 2-D [D, T] array, got shape {getattr(array, 'shape', None)}")
    if array.dtype.kind not in "fiu":
        raise ValueError(f"{path}: expected numbers, got dtype {array.dtype}")
    if array.shape[1] == 0:
        raise ValueError(f"{path}: no frames")
    features = array.astype(np.float32, copy=False)
    if not np.all(np.isfinite(features)):
        raise ValueError(f"{path}: features contain NaN or infinity")
    return features


def segments_json(frame_labels: Sequence[Hashable], fps: float, background: Iterable[Hashable] = ()) -> list[dict]:
    """Frame labels [T] -> [{"label", "start", "end", "start_seconds", "end_seconds"}], end exclusive."""
    if not fps > 0:
        raise ValueError(f"fps must be > 0, got {fps}")
    return [
        {"label": segment.label, "start": segment.start, "end": segment.end,
         "start_seconds": segment.start / fps, "end_seconds": segment.end / fps}
        for segment in segments(frame_labels, background)
    ]


def write_segments_json(path: str, frame_labels: Sequence[Hashable], fps: float, video: str | None = None,
                        background: Iterable[Hashable] = ()) -> None:
    """Writes {"video", "fps", "num_frames", "segments": segments_json(...)} as JSON (atomically)."""
    document = {"video": video, "fps": fps, "num_frames": len(frame_labels),
                "segments": segments_json(frame_labels, fps, background)}
    write_text_atomically(path, json.dumps(document, indent=2) + "\n")


@dataclass
class SegmentationVideo:
    """One video: features float32 [T, D], labels int32 [T] (class indices of the mapping)."""

    name: str
    features: np.ndarray
    labels: np.ndarray


class MstcnDataset:
    """An MS-TCN data set folder.

    sample_rate keeps every n-th frame of features and labels (MS-TCN's ``--sample_rate``; 1 keeps all).
    """

    def __init__(self, root: str, sample_rate: int = 1):
        if sample_rate < 1:
            raise ValueError(f"sample_rate must be >= 1, got {sample_rate}")
        if not os.path.isdir(root):
            raise FileNotFoundError(f"{root}: no such data set folder")
        self.root = root
        self.sample_rate = sample_rate
        self.class_names = read_mapping(os.path.join(root, MAPPING_FILE))
        self.class_index = {name: index for index, name in enumerate(self.class_names)}

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def bundle_path(self, split: str, number: int = 1) -> str:
        return os.path.join(self.root, SPLITS_DIR, f"{split}.split{number}.bundle")

    def videos(self, split: str, number: int = 1) -> list[str]:
        """Video names of ``splits/<split>.split<number>.bundle``."""
        return read_bundle(self.bundle_path(split, number))

    def encode(self, labels: Sequence[str], video: str) -> np.ndarray:
        """Label names [T] -> class indices int32 [T]; an unknown name is a ValueError naming the video."""
        try:
            return np.asarray([self.class_index[label] for label in labels], np.int32)
        except KeyError as error:
            raise ValueError(f"{video}: label {error.args[0]!r} is not in {MAPPING_FILE}") from None

    def load(self, video: str) -> SegmentationVideo:
        """Features [T, D] and labels [T] of one video, cut to the shorter of the two with a warning."""
        features = read_features(os.path.join(self.root, FEATURES_DIR, f"{video}.npy"))
        labels = self.encode(read_frame_labels(os.path.join(self.root, GROUND_TRUTH_DIR, f"{video}.txt")), video)
        length = min(features.shape[1], labels.size)
        if features.shape[1] != labels.size:
            warnings.warn(f"{video}: {features.shape[1]} feature frames but {labels.size} labels; using the first "
                          f"{length}", LengthMismatchWarning, stacklevel=2)
        step = self.sample_rate
        return SegmentationVideo(video, np.ascontiguousarray(features[:, :length:step].T), labels[:length:step])

    def iterate(self, split: str, number: int = 1) -> Iterator[SegmentationVideo]:
        for video in self.videos(split, number):
            yield self.load(video)


def find_file(folder: str, video: str, what: str) -> str:
    """``folder/<video>.txt`` or ``folder/<video>`` (MS-TCN writes results without extension)."""
    for candidate in (os.path.join(folder, f"{video}.txt"), os.path.join(folder, video)):
        if os.path.isfile(candidate):
            return candidate
    raise ValueError(f"{video}: no {what} file in {folder} ({video}.txt or {video})")


def list_videos(folder: str) -> list[str]:
    """Names of the visible files of a predictions or ground-truth folder, ".txt" removed, sorted."""
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"{folder}: no such folder")
    names = sorted(video_name(entry) for entry in os.listdir(folder)
                   if not entry.startswith(".") and os.path.isfile(os.path.join(folder, entry)))
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise ValueError(f"{folder}: both '<video>' and '<video>.txt' exist for {duplicates[:5]}")
    if not names:
        raise ValueError(f"{folder}: no files")
    return names


def evaluation_pairs(ground_truth_dir: str, predictions_dir: str, videos: Sequence[str] | None = None
                     ) -> Iterator[tuple[str, list[str], list[str]]]:
    """Yields (video, predicted labels [T], true labels [T]) for each video.

    videos None means every file of ``predictions_dir``. A missing file or different lengths is a
    ValueError naming the video.
    """
    if not os.path.isdir(ground_truth_dir):
        raise FileNotFoundError(f"{ground_truth_dir}: no such ground-truth folder")
    if not os.path.isdir(predictions_dir):
        raise FileNotFoundError(f"{predictions_dir}: no such predictions folder")
    for video in (list_videos(predictions_dir) if videos is None else videos):
        truth = read_frame_labels(find_file(ground_truth_dir, video, "ground-truth"))
        predicted = read_predictions(find_file(predictions_dir, video, "prediction"))
        if len(predicted) != len(truth):
            raise ValueError(f"{video}: {len(predicted)} predicted frames but {len(truth)} ground-truth frames")
        yield video, predicted, truth

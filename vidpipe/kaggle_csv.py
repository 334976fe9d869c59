"""The two-field Kaggle CSV format shared by submissions and label files.

A header of two names, then ``id,field`` rows; files ending in ``.gz`` are gzip-compressed; a UTF-8 BOM, CRLF
line ends and blank lines are accepted. Rows come back with their 1-based physical line numbers so that every
error names the file, the line and the reason (SubmissionFormatError).
"""

from __future__ import annotations

import gzip
import os
from dataclasses import dataclass
from itertools import chain

import numpy as np

MAX_LABEL_ID = 2**31 - 1


class SubmissionFormatError(ValueError):
    """A malformed submission or label file: names the file, the 1-based line and what is wrong."""

    def __init__(self, path, line_number: int, reason: str):
        self.path = os.fspath(path)
        self.line_number = line_number
        self.reason = reason
        super().__init__(f"{self.path}, line {line_number}: {reason}")


@dataclass(frozen=True)
class Rows:
    """Data rows of one file: ids [R], line numbers [R], tokens of the second field flattened, counts [R]."""

    video_ids: list[str]
    line_numbers: np.ndarray
    tokens: list[str]
    token_counts: np.ndarray

    def line_of_token(self, token_index: int) -> int:
        row = int(np.searchsorted(np.cumsum(self.token_counts), token_index, side="right"))
        return int(self.line_numbers[row])


def lines_after_header(path, header: tuple[str, str]) -> list[str]:
    """The file's lines after a checked header (line 2 onwards); SubmissionFormatError for an empty file or
    another header."""
    text = read_text(path)
    if not text.strip():
        raise SubmissionFormatError(path, 1, f"empty file, expected header {','.join(header)!r}")
    lines = text.split("\n")
    found = tuple(field.strip() for field in lines[0].split(","))
    if found != header:
        raise SubmissionFormatError(path, 1, f"bad header {lines[0].strip()!r}, expected {','.join(header)!r}")
    return lines[1:]


def read_rows(path, header: tuple[str, str]) -> Rows:
    lines = lines_after_header(path, header)
    video_ids: list[str] = []
    line_numbers: list[int] = []
    fields: list[list[str]] = []
    first_line: dict[str, int] = {}
    for line_number, line in enumerate(lines, start=2):
        video_id, comma, rest = line.partition(",")
        if not comma:
            if not line.strip():
                continue
            raise SubmissionFormatError(path, line_number, f"expected 2 comma-separated fields ({header[0]},"
                                        f"{header[1]}), found 1")
        if "," in rest:
            raise SubmissionFormatError(path, line_number,
                                        f"expected 2 comma-separated fields, found {line.count(',') + 1}")
        video_id = video_id.strip()
        if not video_id:
            raise SubmissionFormatError(path, line_number, "empty VideoId")
        note_first_line(path, first_line, video_id, line_number)
        video_ids.append(video_id)
        line_numbers.append(line_number)
        fields.append(rest.split())
    counts = np.fromiter(map(len, fields), dtype=np.int64, count=len(fields))
    return Rows(video_ids, np.asarray(line_numbers, dtype=np.int64), list(chain.from_iterable(fields)), counts)


def note_first_line(path, first_line: dict[str, int], video_id: str, line_number: int) -> None:
    """Adds ``video_id``'s line to ``first_line``; SubmissionFormatError when an earlier row has that VideoId."""
    if video_id in first_line:
        raise SubmissionFormatError(path, line_number,
                                    f"duplicate VideoId {video_id!r} (first on line {first_line[video_id]})")
    first_line[video_id] = line_number


def read_text(path) -> str:
    with open(path, "rb") as raw:
        data = raw.read()
    if os.fspath(path).endswith(".gz"):
        data = gzip.decompress(data)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line_number = data[:error.start].count(b"\n") + 1
        raise SubmissionFormatError(path, line_number, f"not UTF-8 text ({error.reason})") from None


def check_video_id(video_id: str) -> None:
    if not isinstance(video_id, str):
        raise ValueError(f"VideoId {video_id!r} must be a str")
    if not video_id or video_id != video_id.strip() or any(ch in video_id for ch in ",\n\r"):
        raise ValueError(f"VideoId {video_id!r} is empty, padded or holds a comma or line break")


def open_text(path, mode: str):
    if os.fspath(path).endswith(".gz"):
        return gzip.open(path, mode + "t", encoding="utf-8", newline="\n")
    return open(path, mode, encoding="utf-8", newline="\n")


def parse_label_tokens(path, rows: Rows, tokens: list[str], token_stride: int) -> np.ndarray:
    try:
        labels = np.array(tokens, dtype=np.int64) if tokens else np.zeros(0, dtype=np.int64)
    except (ValueError, OverflowError):
        labels = None
    if labels is not None and (labels.size == 0 or (labels.min() >= 0 and labels.max() <= MAX_LABEL_ID)):
        return labels
    for index, token in enumerate(tokens):
        reason = label_token_problem(token)
        if reason:
            raise SubmissionFormatError(path, rows.line_of_token(index * token_stride), reason)
    raise SubmissionFormatError(path, int(rows.line_numbers[0]), "labels could not be parsed")


def label_token_problem(token: str) -> str | None:
    try:
        value = int(token)
    except ValueError:
        return f"non-integer label {token!r}"
    if value < 0:
        return f"negative label {token!r}"
    if value > MAX_LABEL_ID:
        return f"label {token!r} exceeds {MAX_LABEL_ID}"
    return None


def reject_repeated_labels(path, rows: Rows, video_idx: np.ndarray, class_idx: np.ndarray,
                            token_stride: int) -> None:
    keys = video_idx * (MAX_LABEL_ID + 1) + class_idx
    order = np.argsort(keys, kind="stable")
    repeated = np.flatnonzero(keys[order][1:] == keys[order][:-1])
    if repeated.size:
        index = int(order[repeated + 1].min())
        raise SubmissionFormatError(path, rows.line_of_token(index * token_stride),
                                    f"label {int(class_idx[index])} appears more than once")

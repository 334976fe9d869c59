"""Label files: the ``VideoId,Labels`` CSV that ingest reads and evaluation scores against.

Header ``VideoId,Labels``; rows ``id,label label ...`` (an empty field means no labels). Every video id must
pass vidpipe.schema.video_id_problem and every label id lie in [0, vidpipe.schema.MAX_CLASSES).

Two readers share the rules: ``parse_label_row`` takes one line (ingest's Beam pipeline reads the file line
by line, ``check_labels_file`` checks a whole local file with it before any work), ``read_labels`` reads a
whole file at once into arrays (evaluation). The file format itself is vidpipe.kaggle_csv's.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from vidpipe import schema
from vidpipe.kaggle_csv import (
    SubmissionFormatError,
    check_video_id,
    lines_after_header,
    note_first_line,
    open_text,
    parse_label_tokens,
    read_rows,
    reject_repeated_labels,
)

LABELS_HEADER = ("VideoId", "Labels")


def label_ids_problem(label_ids: Sequence[int]) -> str | None:
    """Why ``label_ids`` cannot be one video's labels (an id outside [0, MAX_CLASSES), a repeat); None when they can."""
    problem = next(filter(None, map(schema.label_id_problem, label_ids)), None)
    if problem:
        return problem
    if len(set(label_ids)) != len(label_ids):
        repeated = next(label for index, label in enumerate(label_ids) if label in label_ids[:index])
        return f"label {repeated} appears more than once"
    return None


def parse_label_row(line: str) -> tuple[str, list[int]]:
    """One ``VideoId,Labels`` data row -> (video id, label ids); ValueError with the reason alone."""
    video_id, separator, labels = line.strip().partition(",")
    video_id = video_id.strip()
    if not separator or not video_id:
        raise ValueError("expected VideoId,Labels")
    problem = schema.video_id_problem(video_id)
    if problem:
        raise ValueError(problem)
    tokens = labels.split()
    bad = next((token for token in tokens if not _is_integer(token)), None)
    if bad is not None:
        raise ValueError(f"non-integer label {bad!r}")
    label_ids = [int(token) for token in tokens]
    problem = label_ids_problem(label_ids)
    if problem:
        raise ValueError(problem)
    return video_id, label_ids


def _is_integer(token: str) -> bool:
    try:
        int(token)
    except ValueError:
        return False
    return True


def parse_label_line(line: str, labels_path: str | None = None) -> tuple[str, list[int]]:
    """parse_label_row whose ValueError names the labels file, the row and the reason (for a Beam Map)."""
    try:
        return parse_label_row(line)
    except ValueError as error:
        raise ValueError(f"{labels_path or 'labels file'}: bad row {line.strip()!r}: {error}") from None


def check_labels_file(path) -> int:
    """Checks a local labels file row by row with parse_label_row, before a pipeline reads it; -> its row count.

    SubmissionFormatError names the file, the 1-based line and the reason: a bad header, a bad row, or a
    video id on two rows.
    """
    first_line: dict[str, int] = {}
    for line_number, line in enumerate(lines_after_header(path, LABELS_HEADER), start=2):
        if not line.strip():
            continue
        try:
            video_id, _ = parse_label_row(line)
        except ValueError as error:
            raise SubmissionFormatError(path, line_number, str(error)) from None
        note_first_line(path, first_line, video_id, line_number)
    return len(first_line)


def read_labels(path) -> dict[str, np.ndarray]:
    """Labels CSV -> {VideoId: int64 array of label ids in file order} (empty array for no labels).

    Raises SubmissionFormatError for a malformed file (vidpipe.kaggle_csv), a VideoId that breaks
    vidpipe.schema.video_id_problem and a label id outside [0, vidpipe.schema.MAX_CLASSES).
    """
    video_ids, line_numbers, video_idx, class_idx = read_label_rows(path)
    for video_id, line_number in zip(video_ids, line_numbers):
        if problem := schema.video_id_problem(video_id):
            raise SubmissionFormatError(path, int(line_number), problem)
    out_of_range = np.flatnonzero(class_idx >= schema.MAX_CLASSES)
    if out_of_range.size:
        index = int(out_of_range[0])
        raise SubmissionFormatError(path, int(line_numbers[video_idx[index]]),
                                    schema.label_id_problem(int(class_idx[index])))
    bounds = np.cumsum(np.bincount(video_idx, minlength=len(video_ids)))[:-1]
    return dict(zip(video_ids, np.split(class_idx, bounds))) if video_ids else {}


def write_labels(path, labels: Mapping[str, Sequence[int]]) -> None:
    """Write {VideoId: label ids} as a ``VideoId,Labels`` CSV in the mapping's order."""
    lines = []
    for video_id, label_ids in labels.items():
        check_video_id(video_id)
        lines.append(f"{video_id},{' '.join(str(int(label)) for label in label_ids)}\n")
    with open_text(path, "w") as out:
        out.write(",".join(LABELS_HEADER) + "\n")
        out.write("".join(lines))


def read_label_rows(path):
    """Labels CSV, format checks only -> (video_ids, line_numbers [N], video_idx [P], class_idx [P])."""
    rows = read_rows(path, LABELS_HEADER)
    class_idx = parse_label_tokens(path, rows, rows.tokens, token_stride=1)
    video_idx = np.repeat(np.arange(len(rows.video_ids), dtype=np.int64), rows.token_counts)
    reject_repeated_labels(path, rows, video_idx, class_idx, token_stride=1)
    return rows.video_ids, rows.line_numbers, video_idx, class_idx

"""Timeline images of action segmentations (PNG, drawn with Pillow; matplotlib is not a dependency).

- :func:`write_timeline`: one video, ground truth above prediction, one colour per class, legend of the
  classes that occur, optional scores in the title.
- :func:`write_summary`: a test set: overall scores, the timelines of the first ``max_videos`` videos with
  their frame accuracy, and the frame accuracy of every class that occurs (one bar each).

Frame labels are class indices [T] or class names [T] (names are looked up in ``class_names``).
"""

from __future__ import annotations

import colorsys
import os
import tempfile
from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

_PALETTE = [
    (31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189), (140, 86, 75),
    (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207), (174, 199, 232), (255, 187, 120),
    (152, 223, 138), (255, 152, 150), (197, 176, 213), (196, 156, 148), (247, 182, 210), (199, 199, 199),
    (219, 219, 141), (158, 218, 229),
]
_WHITE = (255, 255, 255)
_BLACK = (0, 0, 0)
_GREY = (110, 110, 110)
_MARGIN = 10
_ROW_GAP = 4


def class_colours(num_classes: int) -> list[tuple[int, int, int]]:
    """A fixed, distinct RGB colour per class: 20 tableau colours, then golden-ratio hues."""
    colours = list(_PALETTE[:num_classes])
    for index in range(len(colours), num_classes):
        hue = (index * 0.618033988749895) % 1.0
        lightness = 0.45 + 0.2 * ((index // 7) % 2)
        red, green, blue = colorsys.hls_to_rgb(hue, lightness, 0.65)
        colours.append((round(red * 255), round(green * 255), round(blue * 255)))
    return colours


def _font(size: int) -> ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:
        return ImageFont.load_default()


def _indices(labels: Sequence, class_names: Sequence[str], what: str) -> np.ndarray:
    array = np.asarray(labels)
    if array.ndim != 1 or array.size == 0:
        raise ValueError(f"{what}: expected a non-empty 1-D sequence of labels, got shape {array.shape}")
    if array.dtype.kind in "iu":
        if array.min() < 0 or array.max() >= len(class_names):
            raise ValueError(f"{what}: class indices must lie in [0, {len(class_names)})")
        return array.astype(np.int64)
    lookup = {name: index for index, name in enumerate(class_names)}
    try:
        return np.asarray([lookup[str(label)] for label in array.tolist()], np.int64)
    except KeyError as error:
        raise ValueError(f"{what}: label {error.args[0]!r} is not a class name") from None


def _draw_bar(draw: ImageDraw.ImageDraw, labels: np.ndarray, box: tuple[int, int, int, int],
              colours: list[tuple[int, int, int]]) -> None:
    left, top, right, bottom = box
    width = right - left
    changes = np.flatnonzero(labels[1:] != labels[:-1]) + 1
    starts = np.concatenate([[0], changes])
    ends = np.concatenate([changes, [labels.size]])
    for start, end in zip(starts, ends):
        x0 = left + round(start * width / labels.size)
        x1 = max(x0 + 1, left + round(end * width / labels.size))
        draw.rectangle([x0, top, x1 - 1, bottom - 1], fill=colours[labels[start]])
    draw.rectangle([left - 1, top - 1, right, bottom], outline=_GREY)


def _legend_rows(draw, names: list[str], width: int, font, line: int) -> list[list[str]]:
    rows: list[list[str]] = [[]]
    used = 0
    for name in names:
        item = line + 6 + int(draw.textlength(name, font=font)) + 14
        if rows[-1] and used + item > width:
            rows.append([])
            used = 0
        rows[-1].append(name)
        used += item
    return rows


def _draw_legend(draw, rows: list[list[str]], names: list[str], colours, left: int, top: int, font, line: int) -> None:
    position = {name: index for index, name in enumerate(names)}
    for row_number, row in enumerate(rows):
        x = left
        y = top + row_number * (line + _ROW_GAP)
        for name in row:
            draw.rectangle([x, y + 2, x + line - 4, y + line - 2], fill=colours[position[name]], outline=_GREY)
            draw.text((x + line + 2, y), name, fill=_BLACK, font=font)
            x += line + 6 + int(draw.textlength(name, font=font)) + 14


def _format_scores(scores: dict | None) -> str:
    if not scores:
        return ""
    keys = [key for key in ("acc", "edit", "f1@10", "f1@25", "f1@50") if key in scores]
    return "   ".join(f"{key} {float(scores[key]):.1f}" for key in keys)


def timeline_image(truth: Sequence, predicted: Sequence, class_names: Sequence[str], title: str = "",
                   scores: dict | None = None, width: int = 1200, font_size: int = 14) -> Image.Image:
    """Ground truth [T] above prediction [T] as coloured bars, a legend of the classes present below."""
    truth_ids = _indices(truth, class_names, "ground truth")
    predicted_ids = _indices(predicted, class_names, "prediction")
    if truth_ids.size != predicted_ids.size:
        raise ValueError(f"{title or 'video'}: {predicted_ids.size} predicted frames but {truth_ids.size} "
                         "ground-truth frames")
    font = _font(font_size)
    line = font_size + 4
    colours = class_colours(len(class_names))
    present = sorted(set(truth_ids.tolist()) | set(predicted_ids.tolist()))
    names = [class_names[index] for index in present]
    measure = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    label_width = int(max(measure.textlength(text, font=font) for text in ("ground truth", "prediction"))) + 12
    bar_left = _MARGIN + label_width
    bar_right = width - _MARGIN
    legend_rows = _legend_rows(measure, names, width - 2 * _MARGIN, font, line)
    bar_height = 2 * line
    header = title + ("   " if title and scores else "") + _format_scores(scores)
    top = _MARGIN + (line + _ROW_GAP if header else 0)
    height = top + 2 * bar_height + _ROW_GAP + 2 * _MARGIN + len(legend_rows) * (line + _ROW_GAP) + _MARGIN
    image = Image.new("RGB", (width, height), _WHITE)
    draw = ImageDraw.Draw(image)
    if header:
        draw.text((_MARGIN, _MARGIN), header, fill=_BLACK, font=font)
    for row, (text, ids) in enumerate((("ground truth", truth_ids), ("prediction", predicted_ids))):
        y = top + row * (bar_height + _ROW_GAP)
        draw.text((_MARGIN, y + (bar_height - line) // 2), text, fill=_BLACK, font=font)
        _draw_bar(draw, ids, (bar_left, y, bar_right, y + bar_height), colours)
    legend_top = top + 2 * bar_height + _ROW_GAP + 2 * _MARGIN
    _draw_legend(draw, legend_rows, names, [colours[index] for index in present], _MARGIN, legend_top, font, line)
    return image


def summary_image(videos: Sequence[tuple[str, Sequence, Sequence]], class_names: Sequence[str],
                  scores: dict | None = None, max_videos: int = 40, width: int = 1400,
                  font_size: int = 13) -> Image.Image:
    """A test set at a glance.

    videos: (name, truth [T], predicted [T]) per video. Shows ``scores`` (e.g. SegmentationScores.result()),
    the first ``max_videos`` timelines (ground truth over prediction, with each video's frame accuracy) and
    the frame accuracy of each class over all videos.
    """
    if not videos:
        raise ValueError("no videos to plot")
    font = _font(font_size)
    line = font_size + 4
    colours = class_colours(len(class_names))
    encoded = []
    correct = np.zeros(len(class_names), np.int64)
    support = np.zeros(len(class_names), np.int64)
    predicted_any = np.zeros(len(class_names), np.int64)
    for name, truth, predicted in videos:
        truth_ids = _indices(truth, class_names, f"{name}: ground truth")
        predicted_ids = _indices(predicted, class_names, f"{name}: prediction")
        if truth_ids.size != predicted_ids.size:
            raise ValueError(f"{name}: {predicted_ids.size} predicted frames but {truth_ids.size} ground-truth frames")
        support += np.bincount(truth_ids, minlength=len(class_names))
        correct += np.bincount(truth_ids[truth_ids == predicted_ids], minlength=len(class_names))
        predicted_any += np.bincount(predicted_ids, minlength=len(class_names))
        encoded.append((name, truth_ids, predicted_ids))
    shown = encoded[:max_videos]
    measure = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    name_width = int(max(measure.textlength(name, font=font) for name, _, _ in shown)) + 12
    name_width = min(name_width, width // 3)
    score_width = int(measure.textlength("100.0%", font=font)) + 12
    present = [index for index in range(len(class_names)) if support[index] > 0]
    class_width = min(int(max(measure.textlength(class_names[i], font=font) for i in present)) + 12, width // 3)
    bar = max(line // 2, 6)
    video_height = 2 * bar + 1 + _ROW_GAP + 2
    header_lines = [f"{len(encoded)} videos" + (f" (first {len(shown)} shown)" if len(shown) < len(encoded) else "")
                    + ": ground truth (upper bar) over prediction (lower bar), frame accuracy on the right",
                    _format_scores(scores)]
    header_lines = [text for text in header_lines if text]
    top = _MARGIN + len(header_lines) * (line + _ROW_GAP) + _MARGIN
    legend_ids = [index for index in range(len(class_names)) if support[index] > 0 or predicted_any[index] > 0]
    legend_names = [class_names[index] for index in legend_ids]
    legend_rows = _legend_rows(measure, legend_names, width - 2 * _MARGIN, font, line)
    legend_top = top + len(shown) * video_height + _MARGIN
    classes_top = legend_top + len(legend_rows) * (line + _ROW_GAP) + 2 * _MARGIN + line + _ROW_GAP
    height = classes_top + len(present) * (line + 2) + _MARGIN
    image = Image.new("RGB", (width, height), _WHITE)
    draw = ImageDraw.Draw(image)
    for number, text in enumerate(header_lines):
        draw.text((_MARGIN, _MARGIN + number * (line + _ROW_GAP)), text, fill=_BLACK, font=font)
    bar_left = _MARGIN + name_width
    bar_right = width - _MARGIN - score_width
    for number, (name, truth_ids, predicted_ids) in enumerate(shown):
        y = top + number * video_height
        draw.text((_MARGIN, y + bar - line // 2), name[:60], fill=_BLACK, font=font)
        _draw_bar(draw, truth_ids, (bar_left, y, bar_right, y + bar), colours)
        _draw_bar(draw, predicted_ids, (bar_left, y + bar + 1, bar_right, y + 2 * bar + 1), colours)
        accuracy = 100.0 * float(np.mean(truth_ids == predicted_ids))
        draw.text((bar_right + 8, y + bar - line // 2), f"{accuracy:.1f}%", fill=_BLACK, font=font)
    _draw_legend(draw, legend_rows, legend_names, [colours[index] for index in legend_ids], _MARGIN, legend_top,
                 font, line)
    draw.text((_MARGIN, classes_top - line - _ROW_GAP),
              "frame accuracy per class (ground-truth frames of the class predicted right)", fill=_BLACK, font=font)
    chart_left = _MARGIN + class_width
    chart_width = width - chart_left - _MARGIN - score_width
    for row, index in enumerate(present):
        y = classes_top + row * (line + 2)
        accuracy = correct[index] / support[index]
        draw.text((_MARGIN, y), class_names[index][:40], fill=_BLACK, font=font)
        draw.rectangle([chart_left, y + 2, chart_left + chart_width, y + line - 2], outline=_GREY)
        if accuracy > 0:
            draw.rectangle([chart_left, y + 2, chart_left + max(1, round(accuracy * chart_width)), y + line - 2],
                           fill=colours[index])
        draw.text((chart_left + chart_width + 8, y), f"{100 * accuracy:.1f}%", fill=_BLACK, font=font)
    return image


def save_png(image: Image.Image, path: str) -> None:
    """Saves ``image`` as PNG through a temporary file renamed over ``path``."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    handle, staged = tempfile.mkstemp(dir=folder, prefix=f".{os.path.basename(path)}.", suffix=".tmp")
    os.close(handle)
    try:
        image.save(staged, format="PNG")
        os.replace(staged, path)
    except BaseException:
        if os.path.exists(staged):
            os.unlink(staged)
        raise


def write_timeline(path: str, truth: Sequence, predicted: Sequence, class_names: Sequence[str], title: str = "",
                   scores: dict | None = None, width: int = 1200) -> None:
    """Writes :func:`timeline_image` as a PNG."""
    save_png(timeline_image(truth, predicted, class_names, title=title, scores=scores, width=width), path)


def write_summary(path: str, videos: Sequence[tuple[str, Sequence, Sequence]], class_names: Sequence[str],
                  scores: dict | None = None, max_videos: int = 40, width: int = 1400) -> None:
    """Writes :func:`summary_image` as a PNG."""
    save_png(summary_image(videos, class_names, scores=scores, max_videos=max_videos, width=width), path)

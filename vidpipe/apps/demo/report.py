"""The demo's closing report: where the run's outputs are, the catalog's view of it, and GAP against chance."""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from pathlib import Path

from vidpipe.apps.demo.corpus import NUM_CLASSES, Corpus
from vidpipe.layout import QUARANTINE_FILE, UNLABELED_SPLIT


def chance_gap(labels: Sequence[Sequence[int]], num_classes: int = NUM_CLASSES, draws: int = 200,
               seed: int = 0) -> float:
    """Mean GAP@20 of uniformly random scores on these labels: what a model that learned nothing gets."""
    import numpy as np

    from vidpipe.metrics import evaluate_dense

    truth = np.zeros((len(labels), num_classes), dtype=np.float32)
    for row, video_labels in enumerate(labels):
        truth[row, list(video_labels)] = 1.0
    rng = np.random.default_rng(seed)
    return float(np.mean([evaluate_dense(rng.random(truth.shape), truth)["gap"] for _ in range(draws)]))


def _catalog_summary(run_id: str) -> list[str]:
    from vidpipe.catalog import Catalog

    with Catalog.from_env() as catalog:
        lines = [f"catalog       {catalog.engine.url.render_as_string(hide_password=True)}"]
        champion = catalog.champion()
        if champion is not None:
            gap = "not evaluated" if champion.gap is None else f"test GAP {champion.gap:.4f}"
            lines.append(f"  champion    version {champion.id} ({champion.model_name}, run {champion.run_id}), {gap}")
        for entry in catalog.history(limit=100):
            if entry.run_id == run_id:
                lines.append(f"  this run    version {entry.version_id} ({entry.model_name}), "
                             f"{'blessed' if entry.blessed else 'not blessed'}")
    return lines


def _csv_rows(path: Path) -> list[dict[str, str]]:
    if not path.is_file():
        return []
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def report_text(manifest: dict, corpus: Corpus, log_path: Path, seconds: float) -> str:
    """Where the outputs are, and the test-split GAP against chance."""
    metrics = json.loads(Path(manifest["metrics"]).read_text())
    chance = chance_gap([corpus.labels()[video_id] for video_id in corpus.ids("test")])
    run_dir = Path(manifest["run_dir"])
    submission = Path(manifest["submission"]) if manifest.get("submission") else None
    predicted = len(_csv_rows(submission)) if submission else 0
    quarantined = _csv_rows(Path(manifest["data"].get(UNLABELED_SPLIT, run_dir / "missing")) / QUARANTINE_FILE)
    lines = [
        "",
        f"vidpipe demo finished in {seconds / 60:.1f} min (Airflow run {manifest['run_id']})",
        (f"test GAP@20   {metrics['gap']:.4f} on {metrics.get('num_videos')} videos "
         f"(chance {chance:.4f}: mean GAP of random scores; Hit@1 {metrics.get('hit_at_one', float('nan')):.4f})"),
        f"gate          {manifest['gate'].get('reason')}",
        f"run folder    {run_dir}",
        f"  submission  {submission.relative_to(run_dir) if submission else 'none: the model was not blessed'}"
        + (f" ({predicted} videos of {manifest.get('predicted_split')}/)" if submission else ""),
        f"  metrics     {Path(manifest['metrics']).relative_to(run_dir)}",
        f"  TensorBoard tensorboard --logdir {manifest['tensorboard_logs']}",
        f"  records     data/{{{','.join(sorted(manifest['data']))}}}/",
        f"  quarantine  data/{UNLABELED_SPLIT}/{QUARANTINE_FILE}: "
        + ("; ".join(f"{Path(row['path']).name} ({row['reason']})" for row in quarantined) or "nothing"),
        *_catalog_summary(manifest["run_id"]),
        f"Airflow log   {log_path}",
    ]
    return "\n".join(lines)

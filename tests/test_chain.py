"""Train -> evaluate -> gate -> batch predict on small learnable records, through the command entry points."""

from __future__ import annotations

import csv
import json

import pytest
from apache_beam.testing.test_pipeline import TestPipeline

from beam_pipelines import predict
from models.synthetic import write_synthetic_data
from models.train import train
from vidpipe.apps import evaluate, gate_cli
from vidpipe.apps.train_cli import build_config
from vidpipe.catalog import Catalog
from vidpipe.gate import GateConfig
from vidpipe.labels_csv import write_labels


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("chain")
    data = write_synthetic_data(str(root / "train"), num_videos=48, num_classes=6, seed=1, levels=("video",))
    test = write_synthetic_data(str(root / "test"), num_videos=24, num_classes=6, seed=2, levels=("video",))
    cfg = build_config("logistic", ["train.num_epochs=40", "input.batch_size=16", "train.base_learning_rate=0.05"])
    train(data.data_dir, str(root / "model"), cfg, progress=False)
    labels_csv = str(root / "test_labels.csv")
    write_labels(labels_csv, dict(zip(test.video_ids[::-1], test.labels[::-1])))
    return root, test, labels_csv


def test_model_on_records_equals_its_submission_csv(trained):
    """Saturated probabilities tie exactly; the CSV keeps every float32 bit and ties follow the VideoId,
    so the records (in file order) and the CSVs (labels in reverse order) give the same metrics to the bit."""
    root, test, labels_csv = trained
    on_records = evaluate.evaluate_model(str(root / "model"), test.data_dir)
    assert on_records["num_videos"] == 24 and on_records["gap"] > 0.5
    submission = str(root / "submission.csv")
    report = predict.run(["--data", test.data_dir, "--model-dir", str(root / "model"), "--output", submission],
                         test_pipeline=TestPipeline())
    assert report["videos"] == 24
    with open(submission) as handle:
        rows = list(csv.DictReader(handle))
    assert sorted(r["VideoId"] for r in rows) == sorted(test.video_ids)
    assert all(len(r["LabelConfidencePairs"].split()) == 2 * 6 for r in rows)
    from_csv = evaluate.main(["--predictions", submission, "--labels", labels_csv, "--num-classes", "6",
                              "--output", str(root / "m.json")])
    assert from_csv == 0
    csv_metrics = json.loads((root / "m.json").read_text())
    for name in ("gap", "hit_at_one", "perr", "map", "map_all_classes"):
        assert csv_metrics[name] == on_records[name], name


def test_evaluate_cli_rejects_mixed_modes(capsys):
    with pytest.raises(SystemExit):
        evaluate.parse_args(["--predictions", "a.csv", "--model-dir", "m"])


def test_gate_blesses_first_model_and_rerun_changes_nothing(trained, catalog):
    root, test, _ = trained
    metrics = evaluate.evaluate_model(str(root / "model"), test.data_dir)
    gate = GateConfig(min_gap=0.3, tolerance=0.01)
    first = gate_cli.gate(catalog, "run-1", "dag", "logistic", str(root / "model"), metrics, gate)
    assert first["blessed"] and first["champion_version_id"] == first["model_version_id"]
    counts = _row_counts(catalog)
    again = gate_cli.gate(catalog, "run-1", "dag", "logistic", str(root / "model"), metrics, gate)
    assert again == first and _row_counts(catalog) == counts
    worse = dict(metrics, gap=metrics["gap"] - 0.05)
    second = gate_cli.gate(catalog, "run-2", "dag", "logistic", str(root / "model"), worse, gate)
    assert not second["blessed"] and second["champion_version_id"] == first["model_version_id"]
    assert "below the champion" in second["reason"]


def _row_counts(catalog: Catalog) -> dict[str, int]:
    from sqlalchemy import text

    with catalog.engine.connect() as connection:
        return {table: connection.execute(text(f"SELECT COUNT(*) FROM {table}")).scalar_one()
                for table in ("pipeline_runs", "model_versions", "evaluations", "blessings", "champions")}

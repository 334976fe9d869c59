"""``vidpipe gate``: record a trained candidate in the catalog and bless it against the champion.

A candidate is blessed when its GAP is at least --min-gap and, when there is a champion, no more than
--tolerance below the champion's GAP. A blessed candidate is promoted: batch prediction then uses it.
Reading the champion, deciding, recording and promoting happen in one transaction under the catalog's
write lock, so concurrent gates behave as if run one after another. A run id is decided once: running
again with the same inputs returns the recorded decision; different inputs are refused.
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Mapping
from typing import Any

from vidpipe.catalog import Blessing, Catalog, CatalogTransaction, ModelVersion, stored_document
from vidpipe.gate import GateConfig, decide, validate_metrics

EVALUATION_SPLIT = "test"
RUN_STATUS = {True: "blessed", False: "rejected"}
SHOWN_VALUE_CHARS = 60


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= SHOWN_VALUE_CHARS else text[: SHOWN_VALUE_CHARS - 3] + "..."


def _differences(recorded: Mapping[str, Any], given: Mapping[str, Any]) -> list[str]:
    """'name (recorded X, given Y)' for each entry whose value differs between the two."""
    missing = object()
    differences = []
    for name in sorted(set(recorded) | set(given), key=str):
        old, new = recorded.get(name, missing), given.get(name, missing)
        if old != new:
            differences.append(f"{name} (recorded {'nothing' if old is missing else _shown(old)}, "
                               f"given {'nothing' if new is missing else _shown(new)})")
    return differences


def _recorded_decision(tx: CatalogTransaction, run_id: str) -> tuple[ModelVersion, Blessing] | None:
    for version in tx.model_versions_of_run(run_id, EVALUATION_SPLIT):
        blessing = tx.blessing(version.id)
        if blessing is not None:
            return version, blessing
    return None


def _refuse_other_inputs(tx: CatalogTransaction, run_id: str, version: ModelVersion, blessing: Blessing,
                         model_name: str, model_dir: str, metrics: Mapping[str, Any], config: GateConfig) -> None:
    """Raises ValueError naming what differs when a decided run id is gated with other inputs."""
    differences = _differences(
        {"model name": version.model_name, "model dir": version.model_dir,
         "min gap": blessing.threshold, "tolerance": blessing.tolerance},
        {"model name": model_name, "model dir": model_dir, "min gap": config.min_gap, "tolerance": config.tolerance},
    )
    recorded_metrics = tx.evaluation(version.id, EVALUATION_SPLIT) or {}
    differences += [f"metric {difference}" for difference in _differences(recorded_metrics, stored_document(metrics))]
    if differences:
        raise ValueError(f"run {run_id!r} was already gated (model version {version.id}, "
                         f"{RUN_STATUS[blessing.blessed]}); its decision stands, refusing different "
                         + "; ".join(differences))


def _model_config(model_dir: str) -> dict:
    config_path = os.path.join(model_dir, "config.json")
    if not os.path.exists(config_path):
        return {}
    try:
        with open(config_path) as handle:
            return json.load(handle)
    except ValueError as error:
        raise ValueError(f"model config {config_path}: not valid JSON ({error})") from error


def gate(catalog: Catalog, run_id: str, dag_id: str, model_name: str, model_dir: str, metrics: Mapping[str, Any],
         config: GateConfig, params: dict | None = None) -> dict:
    """Decides the candidate against the champion and records it, in one locked transaction -> a report.

    The run, model version, evaluation, decision, promotion (when blessed) and the run's final status
    (blessed or rejected) are written together or not at all. Raises ValueError for invalid metrics, when
    the champion has no GAP to compare with, or when `run_id` was already gated with other inputs.
    """
    validate_metrics(metrics, f"of run {run_id!r}")
    model_config = _model_config(model_dir)
    catalog.ensure_schema()
    with catalog.transaction() as tx:
        recorded = _recorded_decision(tx, run_id)
        if recorded is not None:
            version, blessing = recorded
            _refuse_other_inputs(tx, run_id, version, blessing, model_name, model_dir, metrics, config)
            if tx.run_status(run_id) != RUN_STATUS[blessing.blessed]:
                tx.record_run(run_id, dag_id, params or {}, RUN_STATUS[blessing.blessed])
        else:
            registered = tx.model_versions_of_run(run_id, EVALUATION_SPLIT)
            if registered and (registered[0].model_name, registered[0].model_dir) != (model_name, model_dir):
                raise ValueError(f"run {run_id!r} already registered model {registered[0].model_name!r} at "
                                 f"{registered[0].model_dir}; refusing {model_name!r} at {model_dir}")
            champion = tx.champion(EVALUATION_SPLIT)
            if champion is not None and champion.gap is None:
                raise ValueError(f"champion model version {champion.id} has no {EVALUATION_SPLIT!r} evaluation "
                                 "to compare the candidate with")
            decision = decide(float(metrics["gap"]), champion.gap if champion else None, config)
            tx.record_run(run_id, dag_id, params or {}, RUN_STATUS[decision.blessed])
            version_id = tx.register_model(run_id, model_name, model_dir, model_config)
            tx.record_evaluation(version_id, EVALUATION_SPLIT, metrics)
            blessing = tx.record_blessing(version_id, decision, champion.id if champion else None)
            if blessing.blessed:
                tx.promote(version_id, run_id, EVALUATION_SPLIT)
            version = tx.model_version(version_id, EVALUATION_SPLIT)
        current = tx.champion(EVALUATION_SPLIT)
    return {
        "run_id": run_id, "model_version_id": version.id, "model_name": version.model_name,
        "model_dir": version.model_dir, "gap": version.gap, "blessed": blessing.blessed, "reason": blessing.reason,
        "champion_version_id": current.id if current else None,
        "champion_model_dir": current.model_dir if current else None,
        "catalog": catalog.display_url,
    }


def read_metrics(path: str) -> Mapping[str, Any]:
    """The metrics JSON written by vidpipe evaluate, validated; ValueError names the file and the field."""
    with open(path) as handle:
        try:
            metrics = json.load(handle)
        except ValueError as error:
            raise ValueError(f"metrics {path}: not valid JSON ({error})") from error
    return validate_metrics(metrics, path)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="vidpipe gate", description=__doc__.split("\n\n")[0])
    parser.add_argument("--run-id", required=True, help="the pipeline run this candidate belongs to")
    parser.add_argument("--dag-id", default="manual", help="the DAG (or tool) that produced the run")
    parser.add_argument("--model-name", required=True, help="registered model name (e.g. moe)")
    parser.add_argument("--model-dir", required=True, help="the candidate's train dir")
    parser.add_argument("--metrics", required=True, help="JSON written by vidpipe evaluate (needs 'gap')")
    parser.add_argument("--min-gap", type=float, default=0.0, help="absolute GAP threshold")
    parser.add_argument("--tolerance", type=float, default=0.0, help="how far below the champion's GAP still passes")
    parser.add_argument("--params", default="{}", help="JSON of the run's parameters, stored with the run")
    parser.add_argument("--catalog-url", help="SQLAlchemy URL or SQLite path (default: $VIDPIPE_CATALOG_URL)")
    args = parser.parse_args(argv)
    metrics = read_metrics(args.metrics)
    try:
        params = json.loads(args.params)
    except ValueError as error:
        raise ValueError(f"--params: not valid JSON ({error})") from error
    if not isinstance(params, dict):
        raise ValueError(f"--params: expected a JSON object, got {type(params).__name__}")  # noqa: TRY004
    catalog = Catalog.open(args.catalog_url)
    with catalog:
        report = gate(catalog, args.run_id, args.dag_id, args.model_name, os.path.abspath(args.model_dir), metrics,
                      GateConfig(min_gap=args.min_gap, tolerance=args.tolerance), params)
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    from vidpipe.process import exit_after_tft

    exit_after_tft(main)

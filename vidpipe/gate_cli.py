"""``vidpipe gate``: record a trained candidate in the catalog and bless it against the champion.

A candidate is blessed when its GAP is at least --min-gap and, when there is a champion, no more than
--tolerance below the champion's GAP. A blessed candidate is promoted: batch prediction then uses it.
Re-running with the same run id changes nothing: the first decision for a model version stands.
"""

from __future__ import annotations

import argparse
import json
import os

from vidpipe.catalog import Catalog
from vidpipe.gate import GateConfig, decide

EVALUATION_SPLIT = "test"


def gate(catalog: Catalog, run_id: str, dag_id: str, model_name: str, model_dir: str, metrics: dict,
         config: GateConfig, params: dict | None = None) -> dict:
    """Registers the run/model/evaluation, decides once, promotes when blessed -> a JSON-able report."""
    catalog.ensure_schema()
    catalog.record_run(run_id, dag_id, params or {}, "evaluating")
    model_config = {}
    config_path = os.path.join(model_dir, "config.json")
    if os.path.exists(config_path):
        with open(config_path) as handle:
            model_config = json.load(handle)
    version_id = catalog.register_model(run_id, model_name, model_dir, model_config)
    catalog.record_evaluation(version_id, EVALUATION_SPLIT, metrics)
    blessing = catalog.blessing(version_id)
    if blessing is None:
        champion = catalog.champion(EVALUATION_SPLIT)
        if champion is not None and champion.id == version_id:
            champion = None
        decision = decide(float(metrics["gap"]), champion.gap if champion else None, config)
        blessing = catalog.record_blessing(version_id, decision, champion.id if champion else None)
    if blessing.blessed:
        catalog.promote(version_id, run_id, EVALUATION_SPLIT)
    catalog.record_run(run_id, dag_id, params or {}, "blessed" if blessing.blessed else "not_blessed")
    current = catalog.champion(EVALUATION_SPLIT)
    return {
        "run_id": run_id, "model_version_id": version_id, "model_name": model_name, "model_dir": model_dir,
        "gap": float(metrics["gap"]), "blessed": blessing.blessed, "reason": blessing.reason,
        "champion_version_id": current.id if current else None,
        "champion_model_dir": current.model_dir if current else None,
        "catalog": str(catalog.engine.url.render_as_string(hide_password=True)),
    }


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
    with open(args.metrics) as handle:
        metrics = json.load(handle)
    if "gap" not in metrics:
        parser.error(f"--metrics {args.metrics}: no 'gap' in it")
    catalog = Catalog(args.catalog_url) if args.catalog_url else Catalog.from_env()
    with catalog:
        report = gate(catalog, args.run_id, args.dag_id, args.model_name, os.path.abspath(args.model_dir), metrics,
                      GateConfig(min_gap=args.min_gap, tolerance=args.tolerance), json.loads(args.params))
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""The champion and the model history recorded in the SQL catalog.

An unreachable catalog database is reported in one line (exit status 2), like every catalog command.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict

from vidpipe.catalog import Catalog


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="vidpipe catalog", description=__doc__.split("\n\n")[0])
    parser.add_argument("--catalog-url", help="SQLAlchemy URL or SQLite path (default: $VIDPIPE_CATALOG_URL)")
    parser.add_argument("--limit", type=int, default=20, help="model versions to list, newest first")
    args = parser.parse_args(argv)
    with Catalog.open(args.catalog_url) as catalog:
        catalog.ensure_schema()
        champion = catalog.champion()
        report = {
            "catalog": catalog.display_url,
            "champion": asdict(champion) if champion else None,
            "history": [asdict(entry) for entry in catalog.history(limit=args.limit)],
        }
    print(json.dumps(report, indent=2, default=str))
    return 0


if __name__ == "__main__":
    from vidpipe.process import exit_after_tft

    exit_after_tft(main)

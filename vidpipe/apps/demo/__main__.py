"""``python -m vidpipe.apps.demo``: the same as ``vidpipe demo``."""

from vidpipe.apps.demo import main

raise SystemExit(main())

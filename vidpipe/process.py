"""Process exit for entry points that ran a tf.Transform pipeline.

tensorflow-transform leaves protobuf objects whose deallocation at interpreter exit segfaults (exit 139)
although the work succeeded. Entry points therefore flush their streams and leave with ``os._exit``.
"""

from __future__ import annotations

import os
import sys
from typing import Callable


def exit_now(code: int) -> None:
    """Flushes stdout/stderr and ends the process with ``code``, skipping interpreter teardown."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def exit_after_tft(main: Callable[[], int | None]) -> None:
    """Runs ``main`` and exits with its status.

    Bad input (ValueError, FileNotFoundError, whose messages name the input and the reason) exits 2 with the
    message alone (VIDPIPE_DEBUG=1 adds the traceback); any other exception exits 1 with its traceback.
    """
    try:
        code = main() or 0
    except (ValueError, FileNotFoundError) as error:
        if os.environ.get("VIDPIPE_DEBUG"):
            import traceback

            traceback.print_exc()
        print(f"vidpipe: error: {error}", file=sys.stderr)
        code = 2
    except SystemExit as stop:
        code = stop.code if isinstance(stop.code, int) else (0 if stop.code is None else 1)
        if not isinstance(stop.code, int) and stop.code is not None:
            print(stop.code, file=sys.stderr)
    except BaseException:  # noqa: BLE001 - report and exit non-zero, still skipping the teardown crash
        import traceback

        traceback.print_exc()
        code = 1
    exit_now(code)

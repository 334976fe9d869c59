"""Process exit for entry points that ran a tf.Transform pipeline.

tensorflow-transform leaves protobuf objects whose deallocation at interpreter exit segfaults (exit 139)
although the work succeeded. Entry points therefore flush their streams and leave with ``os._exit``.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable

from vidpipe.layout import DEBUG_ENV, VERBOSE_ENV


def exit_now(code: int) -> None:
    """Flushes stdout/stderr and ends the process with ``code``, skipping interpreter teardown."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def exit_after_tft(main: Callable[[], int | None]) -> None:
    """Runs ``main`` and exits with its status.

    Bad input (ValueError, FileNotFoundError, whose messages name the input and the reason, or a SystemExit
    carrying a message) exits 2 with the message alone (VIDPIPE_DEBUG=1 adds the traceback); any other
    exception exits 1 with its traceback.
    """
    try:
        code = main() or 0
    except (ValueError, FileNotFoundError) as error:
        if os.environ.get(DEBUG_ENV):
            import traceback

            traceback.print_exc()
        print(f"vidpipe: error: {error}", file=sys.stderr)
        code = 2
    except SystemExit as stop:
        code = stop.code if isinstance(stop.code, int) else (0 if stop.code is None else 2)
        if not isinstance(stop.code, int) and stop.code is not None:
            print(f"vidpipe: error: {stop.code}", file=sys.stderr)
    except BaseException:  # noqa: BLE001 - report and exit non-zero, still skipping the teardown crash
        import traceback

        traceback.print_exc()
        code = 1
    exit_now(code)


def verbose() -> bool:
    return os.environ.get(VERBOSE_ENV, "") not in ("", "0")


def quiet_tensorflow() -> None:
    """Keeps TensorFlow's C++ log lines (oneDNN, CUDA, cpu_feature_guard) out of what a person reads.

    TF 2.21 writes its start-up lines through absl before TF_CPP_MIN_LOG_LEVEL is read, so the import is
    made with stderr pointed at /dev/null; later C++ logging is off through TF_CPP_MIN_LOG_LEVEL. Python
    errors and warnings are untouched. Does nothing with VIDPIPE_VERBOSE=1 (``vidpipe --verbose``).
    """
    if verbose() or "tensorflow" in sys.modules:
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        import tensorflow  # noqa: F401
    finally:
        os.dup2(saved, 2)
        os.close(devnull)
        os.close(saved)

"""Small helpers shared by the top-level scripts."""

from __future__ import annotations

import sys
from collections.abc import Callable

from utils.errors import LSTMFCNError


def run_main(main: Callable[[], int | None]) -> None:
    """Run a script's ``main``; a user error becomes one stderr line and exit code 2."""
    try:
        code = main()
    except LSTMFCNError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt as interrupt:
        # a stop at a safe point says what was saved (utils.interrupts)
        print(f"interrupted: {interrupt}" if str(interrupt) else "interrupted", file=sys.stderr)
        sys.exit(130)
    sys.exit(code or 0)

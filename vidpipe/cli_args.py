"""Argument parsing for stages whose unknown options go on to Beam.

A stage parses its own options with ``parse_known_args`` and hands the rest to Beam. Two argparse habits
would let the extra options override the stage's own: the last of a repeated option wins, and a prefix
(``--out=...``) is taken for the full name. :class:`StageArgumentParser` refuses both: an option of the
stage given twice is an error, and only full option names are recognised.

Standard library only.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence


class RepeatedOptionError(ValueError):
    """A stage option given more than once (entry points report it as one line and exit 2)."""


class StageArgumentParser(argparse.ArgumentParser):
    """An ArgumentParser that raises RepeatedOptionError for an option given twice and takes no prefixes."""

    def __init__(self, *args, **kwargs):
        kwargs["allow_abbrev"] = False
        super().__init__(*args, **kwargs)

    def parse_known_args(self, args: Sequence[str] | None = None, namespace=None):
        import sys

        arguments = list(sys.argv[1:] if args is None else args)
        self.check_no_repeats(arguments)
        return super().parse_known_args(arguments, namespace)

    def check_no_repeats(self, arguments: Sequence[str]) -> None:
        """Raises RepeatedOptionError naming the first option of this parser that occurs twice."""
        actions = {option: action for action in self._actions for option in action.option_strings}
        seen: set[int] = set()
        for token in arguments:
            if token == "--":
                break
            if not token.startswith("-"):
                continue
            action = actions.get(token.split("=", 1)[0])
            if action is None:
                continue
            if id(action) in seen:
                raise RepeatedOptionError(f"{token.split('=', 1)[0]} given twice; a stage option may be given "
                                          f"once (it cannot be overridden through Beam options)")
            seen.add(id(action))

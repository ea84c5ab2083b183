"""The help format of the command line: each flag's default after its help (unless the help says
it already, or there is none to say), descriptions and examples as written."""

from __future__ import annotations

import argparse

__all__ = ["Help"]


class Help(argparse.RawDescriptionHelpFormatter):
    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if "default" in text or action.default in (None, argparse.SUPPRESS, False, True) or not action.option_strings:
            return text
        shown = " ".join(map(str, action.default)) if isinstance(action.default, list) else action.default
        return f"{text} (default: {shown})" if text else f"(default: {shown})"

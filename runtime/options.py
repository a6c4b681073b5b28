"""What the rnnedge commands' option parsers share: help that states a default once, and renamed options whose old
spelling still works for one release. Stdlib only, like runtime/command.py: `rnnedge run` and `rnnedge inspect` use
it on a device without torch.
"""

from __future__ import annotations

import argparse
import sys


class HelpFormatter(argparse.HelpFormatter):
    """Appends "(default: X)" to an option's help unless the help already says its default, or there is none to
    say (None, False: an option left out, a flag not given)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if "default" in text or default is None or default is False or default is argparse.SUPPRESS:
            return text
        return text + " (default: %(default)s)"


class RawHelpFormatter(argparse.RawDescriptionHelpFormatter, HelpFormatter):
    """HelpFormatter for a command whose description and epilog are laid out by hand."""


class Renamed(argparse.Action):
    """The old spelling of a renamed option: hidden from --help, it stores into the new option's dest and says once
    on stderr that it is renamed."""

    def __init__(self, option_strings, dest, new: str, prog: str, **kwargs):
        super().__init__(option_strings, dest, **kwargs)
        self.new, self.prog = new, prog

    def __call__(self, parser, namespace, values, option_string=None):
        print(f"{self.prog}: {option_string} is now {self.new}; the old name goes in the next release",
              file=sys.stderr)
        setattr(namespace, self.dest, values)


def add_renamed(group, old: str, new: argparse.Action, prog: str) -> None:
    """Accept `old` as a hidden spelling of the option `new` (its dest, type, nargs and metavar)."""
    group.add_argument(old, dest=new.dest, action=Renamed, new=new.option_strings[0], prog=prog, type=new.type,
                       nargs=new.nargs, metavar=new.metavar, default=argparse.SUPPRESS, help=argparse.SUPPRESS)


def renamed_epilog(renames: dict[str, str]) -> str:
    """The sentence a command's --help ends with, naming each old spelling that still works."""
    pairs = ", ".join(f"{old} is now {new}" for old, new in renames.items())
    return f"Renamed options (the old spellings still work in this release, with a note on stderr): {pairs}."

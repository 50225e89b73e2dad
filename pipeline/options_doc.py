"""docs/options.md, generated from the options' own declarations: ``python -m pipeline.options_doc > docs/options.md``.

The text comes from ``OPTION_GROUPS``, the same declarations ``python -m pipeline --help`` shows,
so the page cannot drift from the job; tests/pipeline/test_options_doc.py checks that the file is current.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable

from pipeline.options import OPTION_GROUPS, Flag

COMMAND = "python -m pipeline.options_doc > docs/options.md"

INTRO = """\
# Options

<!-- Generated from pipeline/options.py by `{command}`; do not edit by hand. -->

The job's own options, grouped as `python -m pipeline --help` shows them. Beam's standard
options work beside them (`--runner`, `--streaming`, also as `--streaming=true|false`,
`--project`, which is the Google Cloud project, never Woopra's); `python -m pipeline --help-beam`
lists those. A YAML file of defaults can be given with `--runner_config` (see `runner_configs/`);
flags on the command line win over it.

Bad options stop the job before any work, with exit code 2 and one line naming the option
([behaviour.md, Command line](behaviour.md#command-line)).
"""

# Flags the launcher takes besides OPTION_GROUPS (pipeline/launcher.py, pipeline/command_line.py).
ALIASES: tuple[tuple[str, str], ...] = (
    ("--dry_run PATH", "The same as `--dry_run_output PATH`. Beam has its own `--dry_run` test flag (it stops "
                       "Dataflow from submitting a job), so the launcher rewrites this alias before Beam sees it."),
    ("-h, --help", "The job's own options, as above."),
    ("--help-beam", "Beam's standard options."),
)


def _cell(text: str) -> str:
    """Text that can stand in a Markdown table cell: pipes escaped, one line."""
    return " ".join(text.split()).replace("|", "\\|")


def option_row(flag: Flag) -> str:
    """One table row: the option with its value's name, then its help (with its default), as ``--help`` says."""
    return f"| `{_cell(flag.name + ' ' + flag.metavar)}` | {_cell(flag.help_text())} |"


def render_group(title: str, description: str, flags: Iterable[Flag]) -> str:
    """One group of options as a Markdown section with a table."""
    lines = [f"## {title}", ""]
    if description:
        lines += [description, ""]
    lines += ["| Option | Meaning |", "|---|---|"]
    lines += [option_row(flag) for flag in flags]
    return "\n".join(lines) + "\n"


def render_options_markdown(groups: Iterable[tuple[str, str, Iterable[Flag]]] = OPTION_GROUPS) -> str:
    """The whole of docs/options.md."""
    sections = [INTRO.format(command=COMMAND)]
    sections += [render_group(title, description, flags) for title, description, flags in groups]
    aliases = ["## Aliases and help", "", "| Option | Meaning |", "|---|---|"]
    aliases += [f"| `{_cell(name)}` | {_cell(meaning)} |" for name, meaning in ALIASES]
    sections.append("\n".join(aliases) + "\n")
    return "\n".join(sections)


def main() -> None:
    """Print docs/options.md to stdout."""
    sys.stdout.write(render_options_markdown())


if __name__ == "__main__":
    main()

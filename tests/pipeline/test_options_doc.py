"""docs/options.md is generated from the options' declarations (pipeline/options_doc.py) and kept current."""

from __future__ import annotations

import re
from pathlib import Path

from pipeline.options import OPTION_GROUPS, Flag, help_parser
from pipeline.options_doc import COMMAND, render_group, render_options_markdown

OPTIONS_MD = Path(__file__).resolve().parents[2] / "docs" / "options.md"


def test_docs_options_md_is_the_generated_text():
    assert OPTIONS_MD.read_text(encoding="utf-8") == render_options_markdown(), (
        f"docs/options.md is out of date: run {COMMAND}")


def test_every_option_of_help_is_in_docs_options_md():
    help_text = help_parser("python -m pipeline").format_help()
    # The options --help lists: each entry's first word (its epilog also names some of Beam's).
    shown = set(re.findall(r"^  (?:-h, )?(--[a-z][\w-]*)", help_text, re.MULTILINE))
    documented = set(re.findall(r"(?<![\w-])--[a-z][\w-]*", OPTIONS_MD.read_text(encoding="utf-8")))
    declared = {flag.name for _, _, flags in OPTION_GROUPS for flag in flags}
    assert declared <= shown  # the check below covers what --help really prints
    assert shown - documented == set()


def test_each_option_has_its_row_under_its_group_with_help_and_default():
    text = OPTIONS_MD.read_text(encoding="utf-8")
    for title, _, flags in OPTION_GROUPS:
        section = text.split(f"## {title}\n", 1)[1].split("\n## ", 1)[0]
        for flag in flags:
            row = next(line for line in section.splitlines() if line.startswith(f"| `{flag.name} "))
            if flag.default is not None:
                assert f"Default: {flag.default}." in row


def test_a_pipe_in_a_value_name_does_not_split_the_table_row():
    section = render_group("Demo", "", [Flag("--mode", "on|off", "Pick one.", "on")])
    row = section.splitlines()[-1]
    assert row == r"| `--mode on\|off` | Pick one. Default: on. |"
    assert len(re.split(r"(?<!\\)\|", row)) == 4  # two cells between three unescaped pipes

"""Reading a command line before Beam does: runner configs, the ``--dry_run`` alias, streaming
flags, unknown flags (a typo of the job's own is refused), and the runner.

Every problem is an ``OptionsError``: one line naming the flag (docs/behaviour.md#command-line).
"""
from __future__ import annotations

import contextlib
import difflib
import importlib
import io
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions

from pipeline.config import yaml_problem
from pipeline.files import read_text
from pipeline.options import DRY_RUN_ALIAS, FLAGS, OptionsError

log = logging.getLogger("pipeline.command_line")
RUNNER_CONFIG_DIR = Path(__file__).resolve().parent.parent / "runner_configs"
# Beam's DirectRunner first tries to download the Prism runner, which fails without internet
# and is slow with it; these two local runners need nothing from outside.
DEFAULT_BATCH_RUNNER = "FnApiRunner"
DEFAULT_STREAMING_RUNNER = "BundleBasedDirectRunner"


def _flag_name(key: str) -> str:
    return "--" + key.lstrip("-").replace("-", "_")


@dataclass(frozen=True)
class RunnerConfigEntry:
    """One ``key: value`` of a runner config file, as the flags it stands for, with its line."""

    flags: tuple[str, ...]
    line: int


def _runner_config_file(path: str) -> str:
    """The file a runner config names: a path (local or ``gs://``), or a file of runner_configs/ by its name."""
    if "://" not in path and not os.path.exists(path) and (RUNNER_CONFIG_DIR / path).exists():
        return str(RUNNER_CONFIG_DIR / path)
    return path


def runner_config_entries(path: str) -> list[RunnerConfigEntry]:
    """The flags of each ``key: value`` of a runner config file (``key: value`` → ``--key=value``)."""
    try:
        text = read_text(_runner_config_file(path))
    except OSError as exc:
        raise OptionsError(f"--runner_config: cannot read {path}: {exc.strerror or exc}") from None
    try:
        document = yaml.safe_load(text)
        root = yaml.compose(text)  # the same document as nodes, for line numbers
    except yaml.YAMLError as exc:
        raise OptionsError(f"--runner_config: {path} is not valid YAML, {yaml_problem(exc)}") from None
    if document is None:
        return []
    if not isinstance(document, dict) or not isinstance(root, yaml.MappingNode):
        raise OptionsError(f"--runner_config: {path} must be a mapping of option: value")
    lines = {key.value: key.start_mark.line + 1 for key, _ in root.value if isinstance(key, yaml.ScalarNode)}
    entries: list[RunnerConfigEntry] = []
    for key, value in document.items():
        name = _flag_name(str(key))
        if name == "--runner_config":
            raise OptionsError(f"--runner_config: {path} cannot name another runner_config")
        if value is None or value is False:
            continue
        if value is True:
            flags = [name]
        elif isinstance(value, list):
            flags = [f"{name}={item}" for item in value]
        else:
            flags = [f"{name}={value}"]
        entries.append(RunnerConfigEntry(tuple(flags), lines.get(str(key), 0)))
    return entries


def runner_config_flags(path: str) -> list[str]:
    """The flags a runner config YAML file stands for, in file order."""
    return [flag for entry in runner_config_entries(path) for flag in entry.flags]


def runner_config_path(argv: Sequence[str]) -> str | None:
    """The file named by ``--runner_config`` on the command line, if any."""
    for i, arg in enumerate(argv):
        if arg == "--runner_config":
            if i + 1 >= len(argv) or argv[i + 1].startswith("--"):
                raise OptionsError("--runner_config needs a file name, e.g. --runner_config runner_configs/local.yaml")
            return argv[i + 1]
        if arg.startswith("--runner_config="):
            return arg.split("=", 1)[1]
    return None


def expand_runner_config(argv: Sequence[str]) -> list[str]:
    """Put the runner config's flags before the command line's, so command-line flags win."""
    path = runner_config_path(argv)
    return (runner_config_flags(path) if path else []) + list(argv)


def check_runner_config_flags(path: str) -> None:
    """Refuse a runner config key that looks like a typo of the job's own options, naming the file and
    its line; warn of other unknown keys, which go to the runner as they are (check_unknown_flags)."""
    for entry in runner_config_entries(path):
        for flag in unknown_flags(normalize_streaming(take_dry_run(list(entry.flags)))):
            meant = job_option_meant(flag)
            if meant:
                raise OptionsError(f"--runner_config {path}, line {entry.line}: unknown option "
                                   f"'{flag.removeprefix('--')}', did you mean '{meant.removeprefix('--')}'? "
                                   "(see python -m pipeline --help)")
            log.warning("--runner_config %s, line %d: %s is not an option of this job or of Beam; it is passed on "
                        "to the runner as it is", path, entry.line, flag)


def job_option_meant(flag: str) -> str | None:
    """The job's own option that an unknown ``flag`` looks like a typo of, if any.

    A dashed spelling (``--max-in-flight``), an abbreviation (``--max_in``) or a near miss
    (``--max_in_flght``) of one of the job's options; None for anything else.
    """
    name = flag.removeprefix("--").replace("-", "_")
    if not name:
        return None
    if name in FLAGS:
        return FLAGS[name].name
    abbreviated = [key for key in FLAGS if key.startswith(name)]
    if abbreviated:
        return FLAGS[abbreviated[0]].name
    close = difflib.get_close_matches(name, list(FLAGS), n=1, cutoff=0.8)
    return FLAGS[close[0]].name if close else None


def check_unknown_flags(unknown: Sequence[str]) -> None:
    """Refuse the first unknown flag that looks like a typo of the job's own options; warn of the others.

    Beam passes options it does not know on to the runner, with a warning (Dataflow's launcher
    adds some, e.g. ``--launcher_machine_type``): so does the job, except for what is most likely
    a mistyped option of its own, which would otherwise be silently left at its default.
    """
    for flag in unknown:
        meant = job_option_meant(flag)
        if meant:
            raise OptionsError(f"unknown option {flag}, did you mean {meant}? python -m pipeline --help lists "
                               "the options")
    for flag in unknown:
        log.warning("%s is not an option of this job or of Beam; it is passed on to the runner as it is", flag)


def take_dry_run(argv: Sequence[str]) -> list[str]:
    """Rewrite the ``--dry_run PATH`` alias as ``--dry_run_output=PATH`` before Beam parses.

    Beam's own TestOptions declares ``--dry_run`` (it stops Dataflow from submitting the job), so
    the alias must never reach Beam; ``--dry_run=true`` / ``--dry_run=false`` (no path) stay Beam's:
    they build a Dataflow job without submitting it.
    """
    rest: list[str] = []
    args = list(argv)
    i = 0
    while i < len(args):
        arg = args[i]
        path: str | None = None
        if arg == DRY_RUN_ALIAS:
            path = args[i + 1] if i + 1 < len(args) and not args[i + 1].startswith("--") else ""
            i += 1
        elif arg.startswith(DRY_RUN_ALIAS + "="):
            path = arg.split("=", 1)[1]
            if path.lower() in ("true", "false"):
                path = None  # Beam's TestOptions.dry_run
        if path is None:
            rest.append(arg)
        elif not path:
            raise OptionsError("--dry_run needs a path prefix for the request files, e.g. --dry_run out/requests/")
        else:
            rest.append(f"--dry_run_output={path}")
        i += 1
    return rest


def normalize_streaming(argv: Sequence[str]) -> list[str]:
    """Accept ``--streaming=true|false`` and ``--streaming true|false`` (Beam's flag takes no value);
    the last one given wins, so the command line overrides a runner config's ``streaming``."""
    rest: list[str] = []
    streaming: bool | None = None
    args = list(argv)
    i = 0
    while i < len(args):
        arg = args[i]
        value: str | None = None
        if arg.startswith("--streaming="):
            value = arg.split("=", 1)[1]
        elif arg == "--streaming":
            value = "true"
            if i + 1 < len(args) and args[i + 1].lower() in ("true", "false"):
                value = args[i + 1]
                i += 1
        if value is None:
            rest.append(arg)
        elif value.lower() in ("true", "false"):
            streaming = value.lower() == "true"
        else:
            raise OptionsError(f"--streaming takes no value, or true or false; got {value!r}")
        i += 1
    return rest + ["--streaming"] if streaming else rest


def unknown_flags(argv: Sequence[str]) -> list[str]:
    """Flags no registered PipelineOptions class knows (typos would otherwise be ignored).

    Beam keeps unknown flags only when asked (``retain_unknown_options``); an option whose value
    differs from the strict parse, or that only the lenient parse has, came from an unknown flag
    (this also catches ``--max-in-flight``, which argparse would give the dest of a known option).
    """
    beam_log = logging.getLogger("apache_beam.options.pipeline_options")
    level = beam_log.level
    beam_log.setLevel(logging.ERROR)  # the strict parse warns "Discarding unparseable args"
    usage = io.StringIO()
    try:
        with contextlib.redirect_stderr(usage):  # argparse prints its whole usage before exiting
            options = PipelineOptions(list(argv))
            strict = options.get_all_options()
            lenient = options.get_all_options(retain_unknown_options=True)
    except SystemExit:
        raise OptionsError(_argparse_reason(usage.getvalue())) from None
    finally:
        beam_log.setLevel(level)
    unknown_dests = {key for key, value in lenient.items() if key not in strict or strict[key] != value}
    flags: list[str] = []
    for arg in argv:
        name = arg.split("=", 1)[0]
        dest = name.removeprefix("--").replace("-", "_")
        if name.startswith("--") and dest in unknown_dests and (dest not in strict or "-" in name[2:]):
            flags.append(name)
    return list(dict.fromkeys(flags))


def _argparse_reason(usage: str) -> str:
    """One line from argparse's usage dump: ``argument --input: expected one argument`` → ``--input needs a value``."""
    last = (usage.strip().splitlines() or ["bad command line"])[-1]
    reason = last.split("error: ", 1)[-1]
    if reason.startswith("argument ") and "expected one argument" in reason:
        flag = reason.removeprefix("argument ").split(":", 1)[0].split("/")[0]
        return f"{flag} needs a value"
    return reason.removeprefix("argument ")


def check_runner(argv: Sequence[str]) -> None:
    """Refuse a runner name Beam would not find (``--runner DirectRuner``), listing the known ones."""

    runner = PipelineOptions(list(argv)).view_as(StandardOptions).runner
    if not runner or not isinstance(runner, str):
        return
    known = [*StandardOptions.KNOWN_RUNNER_NAMES]
    lowered = {name.lower() for name in known}
    if runner.lower() in lowered or runner.lower() + "runner" in lowered:
        return
    if "." in runner:
        module, _, name = runner.rpartition(".")
        try:
            if hasattr(importlib.import_module(module), name):
                return
        except ImportError:
            pass
        raise OptionsError(f"--runner {runner}: no such runner class (give a runner name, e.g. FnApiRunner)")
    close = difflib.get_close_matches(runner, known, n=1)
    hint = f"did you mean {close[0]}? " if close else ""
    raise OptionsError(f"--runner {runner} is not a Beam runner; {hint}known: {', '.join(known)}")


def with_default_runner(argv: Sequence[str]) -> list[str]:
    """Pin a local runner that works offline when the command line names none."""
    argv = list(argv)
    if any(a == "--runner" or a.startswith("--runner=") for a in argv):
        return argv
    streaming = "--streaming" in argv
    return argv + [f"--runner={DEFAULT_STREAMING_RUNNER if streaming else DEFAULT_BATCH_RUNNER}"]



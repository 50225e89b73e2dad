"""The commands of README.md and docs/ are safe to paste, and the outputs they show are what the
program prints: each sample below is run and compared, so the docs cannot drift from the program.

A documented output is compared line by line; a line ``...`` (however indented) stands for any
number of lines. Run ids, times and the stand-in's port are the only things normalized.
"""

from __future__ import annotations

import json
import logging
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import ROOT, SAMPLES, subprocess_env
from woopra_standin import StandIn
from woopra_standin.server import parse_rules_payload

DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^( *)```(\w*)\n(.*?)^\1```", re.DOTALL | re.MULTILINE)
SHELL = {"bash", "sh", "shell", "console"}
DOCUMENTED_ENDPOINT = "http://127.0.0.1:8080/track"  # the stand-in's port in the docs' examples
REAL_WOOPRA_MARKER = "real Woopra"  # a block that reaches Woopra says so in a comment
RUN_ID = re.compile(r"\d{8}T\d{6}Z-[0-9a-f]{4}")


@dataclass(frozen=True)
class Block:
    """One fenced block of a page: its language, its text and where it starts."""

    page: Path
    line: int
    language: str
    text: str

    @property
    def where(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"

    def commands(self) -> list[str]:
        """Its commands, continuation lines joined: every line of a shell block, the ``$ `` lines of others."""
        commands, current = [], ""
        for line in self.text.splitlines():
            if not current:
                if self.language not in SHELL:
                    if not line.startswith("$ "):
                        continue
                    line = line[2:]
                line = line.split(" #", 1)[0] if not line.lstrip().startswith("#") else ""
            current += line.rstrip().removesuffix("\\").strip() + " "
            if not line.rstrip().endswith("\\"):
                if current.strip():
                    commands.append(current.strip())
                current = ""
        return commands


def blocks() -> list[Block]:
    """Every fenced block of README.md and docs/ (options.md is generated from --help)."""
    found = []
    for page in DOCS:
        text = page.read_text(encoding="utf-8")
        for match in FENCE.finditer(text):
            line = text.count("\n", 0, match.start()) + 1
            found.append(Block(page, line, match.group(2), match.group(3)))
    return found


def reaches_woopra(command: str) -> bool:
    """Whether pasting ``command`` would send to an endpoint other than this machine's."""
    words = shlex.split(command)
    job = words[:3] == ["python", "-m", "pipeline"] or (words[:1] == ["woopra-pipeline"])
    debug_send = words[:3] == ["python", "-m", "pipeline.debug"] and "--send" in words
    template = words[:4] == ["gcloud", "dataflow", "flex-template", "run"]
    if not (job or debug_send or template) or "--help" in words:
        return False
    if any(word.startswith(("--dry_run", "--dry-run")) or "dry_run_output=" in word for word in words):
        return False
    endpoints = [words[i + 1] for i, word in enumerate(words[:-1]) if word == "--woopra_endpoint"]
    endpoints += [word.split("=", 1)[1] for word in words if word.startswith("--woopra_endpoint=")]
    endpoints += re.findall(r"woopra_endpoint=([^,\s]+)", command) if template else []
    return not endpoints or any(not re.match(r"https?://(127\.0\.0\.1|localhost)[:/]", e) for e in endpoints)


def test_every_documented_command_is_safe_to_paste():
    unsafe = [f"{block.where}: {command}" for block in blocks() for command in block.commands()
              if reaches_woopra(command) and REAL_WOOPRA_MARKER not in block.text]
    assert not unsafe, ("these commands would send to the real Woopra: give them --dry_run_output or the local "
                        f"stand-in's endpoint, or say so in the block ('# ... {REAL_WOOPRA_MARKER} ...'):\n"
                        + "\n".join(unsafe))


def test_the_check_knows_what_reaches_woopra():
    assert reaches_woopra("python -m pipeline --input a.jsonl --config m.yaml")
    assert reaches_woopra("python -m pipeline.debug a.jsonl --send")
    assert reaches_woopra("python -m pipeline --input a --woopra_endpoint https://www.woopra.com/track")
    assert not reaches_woopra("python -m pipeline --input a --woopra_endpoint http://127.0.0.1:8080/track")
    assert not reaches_woopra("python -m pipeline --input a --dry_run_output out/dry/")
    assert not reaches_woopra("python -m pipeline.debug a.jsonl --events 6")
    assert not reaches_woopra("python -m pipeline --help")


# --- Documented outputs -------------------------------------------------------------------------


@dataclass(frozen=True)
class Sample:
    """A documented command (``$ ...`` first, continuation lines joined) and the output shown after it."""

    block: Block
    command: str
    output: list[str]


def samples(prefix: str) -> list[Sample]:
    """The untagged blocks whose first command starts with ``prefix``: a command and its output."""
    found = []
    for block in blocks():
        lines = block.text.splitlines()
        if block.language or not lines or not lines[0].startswith("$ "):
            continue
        index = 0
        while index < len(lines):
            if not lines[index].startswith("$ "):
                index += 1
                continue
            command = lines[index][2:]
            while command.endswith("\\"):
                index += 1
                command = command[:-1].rstrip() + " " + lines[index].strip()
            output = []
            index += 1
            while index < len(lines) and not lines[index].startswith("$ "):
                output.append(lines[index])
                index += 1
            if command.startswith(prefix) and not command.endswith("&"):
                found.append(Sample(block, command, output))
    return found


def matches(expected: list[str], actual: list[str]) -> bool:
    """``actual`` as ``expected`` shows it, a ``...`` line standing for any lines."""
    if not expected:
        return not actual
    if expected[0].strip() == "...":
        return any(matches(expected[1:], actual[start:]) for start in range(len(actual) + 1))
    return bool(actual) and actual[0] == expected[0] and matches(expected[1:], actual[1:])


def normalized(text: str, standin: StandIn | None = None) -> list[str]:
    """Run ids, times and the stand-in's port as in the docs' samples."""
    text = RUN_ID.sub("RUNID", text)
    text = re.sub(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", "TIME", text)
    text = re.sub(r"(?m)^  time: .*$", "  time: T", text)
    if standin is not None:
        text = text.replace(f"127.0.0.1:{standin.port}", "127.0.0.1:8080")
    return [line.rstrip() for line in text.rstrip("\n").split("\n")]


def run_documented(command: str, cwd: Path, standin: StandIn | None = None) -> subprocess.CompletedProcess[str]:
    """Run a documented ``python -m ...`` command in ``cwd``, against ``standin`` where it names the stand-in."""
    words = shlex.split(command)
    assert words[0] == "python", command
    if standin is not None:
        words = [standin.url if word == DOCUMENTED_ENDPOINT else word for word in words]
    return subprocess.run([sys.executable, *words[1:]], cwd=cwd, env=subprocess_env(), capture_output=True,
                          text=True, timeout=180)


def check_sample(sample: Sample, done: subprocess.CompletedProcess[str], standin: StandIn | None = None) -> None:
    shown = done.stdout + (done.stderr if "error:" in "\n".join(sample.output) else "")
    expected = normalized("\n".join(sample.output).rstrip("\n"))
    actual = normalized(shown, standin)
    assert matches(expected, actual), (f"{sample.block.where}: `{sample.command}` prints\n" + "\n".join(actual)
                                       + "\n\nbut the docs show\n" + "\n".join(expected))


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    """A folder where the docs' relative paths work: the samples, and what the examples made before."""
    (tmp_path / "samples").symlink_to(SAMPLES)
    events = (SAMPLES / "events.jsonl").read_text(encoding="utf-8")
    (tmp_path / "doubled.jsonl").write_text(events + events, encoding="utf-8")
    return tmp_path


def test_the_debuggers_documented_outputs_are_what_it_prints(workdir):
    documented = samples("python -m pipeline.debug")
    assert len(documented) >= 5
    ledger = workdir / "out" / "ledger"
    for sample in documented:
        if "--ledger" in sample.command:
            # The ledger of a run that delivered the purchase: the key the docs show, in one file.
            key = re.search(r"ledger key ([0-9a-f]{32})", "\n".join(sample.output))
            assert key, sample.block.where
            ledger.mkdir(parents=True, exist_ok=True)
            (ledger / "delivered-docs-1-000000.keys").write_text(key.group(1) + "\n")
        done = run_documented(sample.command, workdir)
        assert done.returncode == 0, done.stderr
        check_sample(sample, done)


def documented_rules() -> StandIn:
    """The stand-in of docs/operations.md's dead-letter example, with its rules file from the docs."""
    block = next(b for b in blocks() if b.page.name == "operations.md" and b.language == "json")
    rules, delay_ms = parse_rules_payload(json.loads(block.text))
    return StandIn(port=0, rules=rules, delay_ms=delay_ms or 0.0)


def test_the_dead_letter_and_replay_examples_print_what_the_docs_show(workdir):
    run_sample, summarize, replay = (samples("python -m pipeline --input samples/")[0],
                                     samples("python -m pipeline.dead_letters summarize")[0],
                                     samples("python -m pipeline --input 'out/dead/")[0])
    with documented_rules() as standin:
        done = run_documented(run_sample.command, workdir, standin)
        assert done.returncode == 0, done.stderr
        check_sample(run_sample, done, standin)
    done = run_documented(summarize.command, workdir)
    assert done.returncode == 0, done.stderr
    check_sample(summarize, done)
    with StandIn(port=0) as standin:  # "restarted without rules"
        done = run_documented(replay.command, workdir, standin)
        assert done.returncode == 0, done.stderr
        check_sample(replay, done, standin)


def test_the_documented_refused_run_exits_3_and_names_its_cause(workdir):
    sample = samples("python -m pipeline --input samples/events.jsonl --config samples/mapping.yaml "
                     "--woopra_endpoint http://127.0.0.1:9/track")[0]
    done = run_documented(sample.command, workdir)
    assert done.returncode == 3, done.stderr
    check_sample(sample, done)


def test_the_readmes_summary_is_what_scripts_try_sh_prints(workdir):
    readme = next(b for b in blocks() if b.page.name == "README.md" and b.text.startswith("Woopra delivery summary"))
    command = re.search(r'^"\$PY" -m pipeline (.*?)\n\n', (ROOT / "scripts" / "try.sh").read_text(),
                        re.DOTALL | re.MULTILINE)
    assert command, "scripts/try.sh runs the job"
    args = command.group(1).replace("\\\n", " ").replace('"$OUT', "out/try").replace('"$url"', DOCUMENTED_ENDPOINT)
    with StandIn(port=0) as standin:
        done = run_documented("python -m pipeline " + args.replace('"', ""), workdir, standin)
    assert done.returncode == 0, done.stderr
    check_sample(Sample(readme, "scripts/try.sh", readme.text.rstrip("\n").split("\n")), done, standin)


def test_the_documented_progress_lines_have_the_programs_format():
    from pipeline.launcher import LOG_FORMAT
    from pipeline.progress import Sample as ProgressSample
    from pipeline.progress import batch_progress_line, progress_line

    def shape(line: str) -> str:
        return re.sub(r"\d+(\.\d+)?", "N", re.sub(r"about \d+ (s|min)|under 1 s|unknown", "T", line))

    def logged(message: str) -> str:
        record = logging.LogRecord("pipeline.progress", logging.INFO, __file__, 0, message, None, None)
        return logging.Formatter(LOG_FORMAT).format(record)

    counts = {"read": 634, "delivered_200": 378}
    history = [ProgressSample(0.0, 0, 0, 0), ProgressSample(5.0, 634, 378, 40_000)]
    real = {shape(logged(batch_progress_line(history, counts, {}, 1_048_576))),
            shape(logged(progress_line(counts, {}, 5.0)))}
    documented = [line for block in blocks() for line in block.text.splitlines() if " progress: read=" in line]
    assert documented
    for line in documented:
        assert shape(line) in real, f"documented {line!r}\nthe program logs lines shaped {sorted(real)}"

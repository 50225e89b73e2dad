"""The job's graph as a picture: docs/architecture-*.dot, drawn into .svg by Graphviz.

    python -m pipeline.tools.architecture           # rewrite the .dot files, draw the .svg files
    python -m pipeline.tools.architecture --check   # exit 1 when a checked-in file is stale

The graphs are built from the real pipeline (``pipeline.graph.build_pipeline``), never run: each
step of the job is a box holding its sub-steps, and an arrow is a collection from the sub-step
that makes it to the one that reads it (dashed: read whole, as a side input; labelled: an output
other than the main one, such as ``dead_letters``). Each .svg records the SHA-256 of the .dot it
was drawn from, so a check needs no Graphviz.
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import apache_beam as beam
from apache_beam.pipeline import AppliedPTransform

DOCS = Path(__file__).resolve().parents[2] / "docs"
SAMPLE = ["--input", "samples/events.jsonl", "--config", "samples/mapping.yaml", "--runner", "FnApiRunner"]
GRAPHS = {
    "batch": SAMPLE,
    "streaming": ["--input_subscription", "projects/my-project/subscriptions/events", "--config",
                  "samples/mapping.yaml", "--runner", "BundleBasedDirectRunner", "--streaming"],
}
DRAWN_FROM = "<!-- drawn from {name} sha256 {digest} -->"


def build(argv: list[str]) -> beam.Pipeline:
    """The job's graph for ``argv``, built and not run."""
    from pipeline.graph import build_pipeline
    from pipeline.launcher import parse_command_line

    options, job = parse_command_line(argv)
    return build_pipeline(beam.Pipeline(options=options), job)


def _steps(pipeline: beam.Pipeline) -> list[AppliedPTransform]:
    """The job's own steps (the transforms applied to the pipeline itself), in the order applied."""
    steps: list[AppliedPTransform] = []

    class TopLevel(beam.pipeline.PipelineVisitor):
        def enter_composite_transform(self, node: AppliedPTransform) -> None:
            self.visit_transform(node)

        def visit_transform(self, node: AppliedPTransform) -> None:
            if node.full_label and "/" not in node.full_label:
                steps.append(node)

    pipeline.visit(TopLevel())
    return steps


def _box_of(node: AppliedPTransform | None, boxes: dict[int, str]) -> str | None:
    """The box (a step's sub-step, or a step without any) that ``node`` belongs to."""
    while node is not None and id(node) not in boxes:
        node = node.parent
    return boxes[id(node)] if node is not None else None


def _quoted(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def dot_of(pipeline: beam.Pipeline, title: str) -> str:
    """A Graphviz description of ``pipeline``: a cluster per step, a node per sub-step."""
    boxes: dict[int, str] = {}
    lines = [f"digraph {_quoted(title)} {{", "  rankdir=TB;", '  fontname="Helvetica";',
             '  node [shape=box, fontname="Helvetica", fontsize=10];', '  edge [fontname="Helvetica", fontsize=9];']
    for number, step in enumerate(_steps(pipeline)):
        parts = step.parts or [step]
        lines += [f"  subgraph cluster_{number} {{", f"    label={_quoted(step.full_label)};", "    style=rounded;"]
        for part in parts:
            boxes[id(part)] = f"n{len(boxes)}"
            lines.append(f"    {boxes[id(part)]} [label={_quoted(part.full_label.split('/', 1)[-1])}];")
        lines.append("  }")
    lines += sorted(set(_edges(pipeline, boxes)), key=_edge_order)
    lines.append("}")
    return "\n".join(lines) + "\n"


def _edge_order(edge: str) -> tuple[int, int, str]:
    source, _, rest = edge.strip().partition(" -> ")
    target = rest.split(" ", 1)[0].rstrip(";")
    return int(source[1:]), int(target[1:]), edge


def _edges(pipeline: beam.Pipeline, boxes: dict[int, str]) -> Iterator[str]:
    collected: list[AppliedPTransform] = []

    class Leaves(beam.pipeline.PipelineVisitor):
        def visit_transform(self, node: AppliedPTransform) -> None:
            collected.append(node)

    pipeline.visit(Leaves())
    for node in collected:
        target = _box_of(node, boxes)
        reads = [(pcollection, False) for pcollection in node.main_inputs.values()]
        reads += [(side.pvalue, True) for side in node.side_inputs]
        for pcollection, whole in reads:
            source = _box_of(pcollection.producer, boxes) if pcollection.producer else None
            if source is None or target is None or source == target:
                continue
            attributes = []
            if pcollection.tag not in (None, "None", "events", "main"):
                attributes.append(f"label={_quoted(pcollection.tag)}")
            if whole:
                attributes.append("style=dashed")
            yield f"  {source} -> {target}" + (f" [{', '.join(attributes)}]" if attributes else "") + ";"


def _drawn(svg: str, name: str, dot: str) -> str:
    stamp = DRAWN_FROM.format(name=name, digest=hashlib.sha256(dot.encode()).hexdigest())
    head, _, rest = svg.partition("<svg")
    return f"{head}{stamp}\n<svg{rest}"


def stale_files(graphs: dict[str, str]) -> list[str]:
    """The checked-in files that do not match ``graphs`` (name → dot text)."""
    stale = []
    for name, dot in graphs.items():
        dot_path, svg_path = DOCS / f"architecture-{name}.dot", DOCS / f"architecture-{name}.svg"
        if not dot_path.exists() or dot_path.read_text() != dot:
            stale.append(str(dot_path))
        stamp = DRAWN_FROM.format(name=dot_path.name, digest=hashlib.sha256(dot.encode()).hexdigest())
        if not svg_path.exists() or stamp not in svg_path.read_text():
            stale.append(str(svg_path))
    return stale


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 when a checked-in file is stale")
    args = parser.parse_args(argv)
    graphs = {name: dot_of(build(flags), f"{name} job") for name, flags in GRAPHS.items()}
    if args.check:
        stale = stale_files(graphs)
        for path in stale:
            print(f"stale: {path} (python -m pipeline.tools.architecture rewrites it)")
        return 1 if stale else 0
    dot_program = shutil.which("dot")
    if dot_program is None:
        print("error: Graphviz's dot is missing: apt-get install graphviz", file=sys.stderr)
        return 2
    for name, dot in graphs.items():
        dot_path = DOCS / f"architecture-{name}.dot"
        dot_path.write_text(dot)
        svg = subprocess.run([dot_program, "-Tsvg"], input=dot, capture_output=True, text=True, check=True).stdout
        (DOCS / f"architecture-{name}.svg").write_text(_drawn(svg, dot_path.name, dot))
        print(f"wrote {dot_path} and its .svg")
    return 0


if __name__ == "__main__":
    sys.exit(main())

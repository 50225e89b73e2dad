"""Flex Template entry point: runs ``python -m pipeline`` with the template's parameters (templates/README.md).

Dataflow's launcher runs this file (FLEX_TEMPLATE_PYTHON_PY_FILE) with each parameter as a
``--name=value`` flag beside its own (``--runner``, ``--project``, ``--region``, ...).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

PUBSUB_SOURCES = ("--input_subscription", "--input_topic")
WORKER_IMAGE_FLAGS = ("--sdk_container_image", "--worker_harness_container_image")
MISSING_WORKER_IMAGE = ("error: pass this template's image as the workers' image: write the template file with "
                        "templates/spec.py, or --parameters sdk_container_image=IMAGE (docs/deploy.md, step 5); "
                        "without it the workers cannot import the job")


def _given(argv: Sequence[str], names: Sequence[str]) -> bool:
    """Whether any of the flags is on the command line, as ``--name value`` or ``--name=value``."""
    return any(arg.split("=", 1)[0] in names for arg in argv)


def template_argv(argv: Sequence[str]) -> list[str]:
    """The job's command line for a template launch: a Pub/Sub source implies ``--streaming``.

    The job wants ``--streaming`` with a Pub/Sub source, which a template user cannot give as a
    parameter of the streaming template; the source says it. A given ``--streaming`` is kept.
    """
    args = list(argv)
    if _given(args, PUBSUB_SOURCES) and not _given(args, ("--streaming",)):
        args.append("--streaming")
    return args


def missing_worker_image(argv: Sequence[str]) -> bool:
    """True when no worker image is given: Beam's default image lacks the job, and workers would retry forever."""
    return not _given(argv, WORKER_IMAGE_FLAGS)


def main(argv: Sequence[str] | None = None) -> None:
    """Check the worker image, then hand the command line to the job's launcher."""
    args = list(sys.argv[1:] if argv is None else argv)
    if missing_worker_image(args):
        print(MISSING_WORKER_IMAGE, file=sys.stderr)
        sys.exit(2)
    from pipeline.launcher import main as run_job

    run_job(template_argv(args))


# Guarded: the delivery process is a spawned child, which imports the main module again.
if __name__ == "__main__":
    main()

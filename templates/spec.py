"""Writes a Flex Template file: the image, the metadata, and the environment every launch starts from.

    python templates/spec.py streaming "$IMAGE" > woopra-streaming.json

Dataflow's template file is a ``ContainerSpec`` (image, sdkInfo, metadata, defaultEnvironment).
``gcloud dataflow flex-template build`` writes one too, but cannot put the workers' image in its
default environment; this file does, so a launch needs no ``sdk_container_image`` parameter
(docs/deploy.md, step 5). The default environment also turns Dataflow's exception sampling off
(docs/deploy.md, "Personal data on Dataflow"), and the streaming template uses Streaming Engine.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

TEMPLATES = Path(__file__).resolve().parent
KINDS = ("streaming", "batch")
EXCEPTION_SAMPLING_OFF = "disable_always_on_exception_sampling"


def default_environment(kind: str, image: str) -> dict[str, Any]:
    """What every launch of the template starts from; a launch's own flags override it."""
    environment: dict[str, Any] = {"sdkContainerImage": image, "additionalExperiments": [EXCEPTION_SAMPLING_OFF]}
    if kind == "streaming":
        environment["enableStreamingEngine"] = True
    return environment


def template_spec(kind: str, image: str) -> dict[str, Any]:
    """The template file of one template (``streaming`` or ``batch``) for ``image``."""
    metadata = json.loads((TEMPLATES / f"metadata_{kind}.json").read_text(encoding="utf-8"))
    return {
        "image": image,
        "sdkInfo": {"language": "PYTHON"},
        "metadata": metadata,
        "defaultEnvironment": default_environment(kind, image),
    }


def main(argv: Sequence[str] | None = None) -> None:
    """Print the template file for the kind and image given on the command line."""
    parser = argparse.ArgumentParser(prog="python templates/spec.py", description=__doc__.splitlines()[0])
    parser.add_argument("kind", choices=KINDS, help="which template")
    parser.add_argument("image", help="the image built from templates/Dockerfile, as pushed")
    args = parser.parse_args(argv)
    json.dump(template_spec(args.kind, args.image), sys.stdout, indent=2, ensure_ascii=False)
    print()


if __name__ == "__main__":
    main()

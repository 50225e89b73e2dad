"""``python -m pipeline``: run the Woopra delivery job."""

from pipeline.launcher import main

main()

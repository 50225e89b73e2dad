"""``python -m pipeline.debug``, the command users know: runs ``pipeline/tools/debug.py``."""

from pipeline.tools.debug import main

if __name__ == "__main__":
    main()

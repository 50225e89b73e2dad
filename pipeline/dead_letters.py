"""``python -m pipeline.dead_letters``, the command users know: runs ``pipeline/tools/dead_letters.py``."""

from pipeline.tools.dead_letters import main

if __name__ == "__main__":
    main()

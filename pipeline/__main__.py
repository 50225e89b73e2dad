"""``python -m pipeline``: run the Woopra delivery job."""

from pipeline.launcher import main

# Guarded: a spawned child process (the delivery process) imports this module again.
if __name__ == "__main__":
    main()

"""``python -m pipeline``: run the Woopra delivery job."""

# Guarded, the import too: a spawned child process (the delivery process) imports this module
# again, and must not import Beam with the launcher.
if __name__ == "__main__":
    from pipeline.launcher import main

    main()

"""``python -m mantile``: the Hydra app lives in ``mantile.cli.app``."""

from mantile.cli.app import main

if __name__ == "__main__":
    main()

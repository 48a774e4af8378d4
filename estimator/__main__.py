"""``python -m estimator``: the same command as ``estimate`` (estimator.cli:main)."""

import sys

from estimator.cli import main

if __name__ == "__main__":
    main()
    sys.exit(0)

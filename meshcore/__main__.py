"""``python -m meshcore``: the same command line as ``meshcore``."""

from meshcore.cli.app import main

main()

"""``python -m teep``: the same as the ``teep`` command."""

from teep.cli.main import main

if __name__ == "__main__":
    main()

"""`python cli.py COMMAND` in a checkout: the same command line as the installed `pagerules`."""
from engine.commands.cli import main

if __name__ == "__main__":
    main()

"""`python -m service.cli …` runs the command line."""

from service.cli.commands import main

main()

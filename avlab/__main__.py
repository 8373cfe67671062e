"""``python -m avlab`` runs the CLI."""

from avlab.cli import main

main()

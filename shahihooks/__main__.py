"""`python -m shahihooks`."""

from shahihooks.cli import main

main()

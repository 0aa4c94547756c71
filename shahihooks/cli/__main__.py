"""`python -m shahihooks.cli`."""

from shahihooks.cli import main

main()

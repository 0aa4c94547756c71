"""Integrations with web frameworks: `shahihooks.contrib.django`, `shahihooks.contrib.flask`."""

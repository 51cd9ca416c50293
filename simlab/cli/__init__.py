"""The ``simlab`` command line."""

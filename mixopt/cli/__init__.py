"""The ``mixopt`` command line."""

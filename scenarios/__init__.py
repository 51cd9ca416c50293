"""Scenario plugins. Each module holds one scenario (a ``simlab.Scenario`` subclass);
its config lives in ``conf/scenario/<name>.yaml``."""

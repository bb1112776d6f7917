"""Recipe comparison: the experiments behind docs/results.md, kept out of the `stance` product package.

``settings.yaml`` declares the recipes (one entry per setting), ``sweep`` trains and
caches their runs, ``crossval`` cross-validates where dev cannot decide, ``baselines``
and ``summaries`` measure, ``winner`` picks the winning recipe, and ``report`` writes
docs/results.md.  ``scripts/compare.py`` is the command line.
"""

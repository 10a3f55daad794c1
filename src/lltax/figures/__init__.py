"""Every figure of lltax: the phase diagrams of an experiment (``diagrams``: panels, phase map,
lines, curve profiles, built from ``maps``, ``lines`` and ``grid``) and the per-cell landscape
picture (``landscape``); all written by ``save.save_figure``.

Kept empty of imports: a job that draws one figure imports (and depends on) only its modules.
"""

"""Specialization vs stabilization: tune with every strategy row on every target, score what was
learned (E) and forgotten (F), and recommend a strategy per target.

``grid`` (config, presets), ``rows`` (strategy + anti-forgetting methods), ``runner`` (the resumable
loop), ``scores`` (E, F, O), ``pareto`` (frontier, recommendation), ``report`` (table, plot, JSON).
"""

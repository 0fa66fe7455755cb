"""Specialization vs stabilization: tune with every strategy row on every target, score what was
learned (E) and forgotten (F), and recommend a strategy per target.

``grid`` (config, presets), ``rows`` (strategy + anti-forgetting methods), ``runner`` (the resumable
loop), ``scores`` (E, F, O on one scale), ``sample_scores`` (per-sample scores of an evaluated set),
``uncertainty`` (bootstrap intervals), ``pareto`` (frontier, recommendation, ties), ``report`` (table,
JSON), ``plots`` (E-F plot beside the seen-delta heatmap).
"""

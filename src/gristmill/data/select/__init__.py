"""Model-based data selection: target-domain importance resampling (``select_domain``).

``dsir`` registers its corpus step (``gristmill.data.recipe.load_builtin_steps`` imports it).
"""

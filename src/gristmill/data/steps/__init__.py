"""Per-document steps of the corpus refinery: each module registers its steps with ``@register``.

``gristmill.data.recipe.load_builtin_steps`` imports them all (see ``gristmill steps`` for the list).
"""

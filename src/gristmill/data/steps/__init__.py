"""Per-document steps of the corpus refinery: each module registers its steps with ``@register``.

Importing this package registers every built-in step (see ``gristmill steps`` for the list).
"""

from gristmill.data.steps import (  # noqa: F401
    basic,
    blocklist,
    boilerplate,
    classifier,
    language,
    normalize,
    perplexity,
    pii,
    quality,
    spam,
)

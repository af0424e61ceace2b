"""Model-based data selection: target-domain importance resampling (``select_domain``).

Importing this package registers its corpus steps.
"""

from gristmill.data.select import dsir  # noqa: F401

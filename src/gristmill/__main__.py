"""``python -m gristmill``: the command line, without the current folder on the import path.

``python -m`` puts the current folder first on ``sys.path``, so a recipe naming the user step
``steps:Clean`` would import whatever ``steps.py`` happens to lie in the folder it is run from; the
installed ``gristmill`` command never does that. Dropping the entry makes both behave the same: user
steps come from installed packages, ``PYTHONPATH`` or an explicit file path (``./steps.py:Clean``).
"""

import os
import sys

if sys.path and sys.path[0] in ("", os.getcwd()):
    sys.path.pop(0)

from gristmill.cli import main  # noqa: E402

main()

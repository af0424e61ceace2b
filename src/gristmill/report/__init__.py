"""Reports people look at: the run report (``OUT/report.html``), dataset and model cards, the bias report.

Layering: the run report and the dataset card import only ``gristmill.data`` (``collect``,
``html_page``, ``markdown``, ``svg``, ``cards``, ``terms``, ``bias``); the fill-mask probe
(``probe``) loads a pretrained encoder and so imports ``gristmill.model`` and ``gristmill.train``.
Nothing below ``report`` imports it.
"""

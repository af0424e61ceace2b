"""gristmill: from raw crawled text to a served encoder.

Packages, in the order data flows through them:

- ``gristmill.data``: the corpus refinery (readers, steps, dedup, executors, writers).
- ``gristmill.tokenizer``: tokenizer training and packed token shards.
- ``gristmill.model``: the transformer encoder and its heads.
- ``gristmill.train``: masked-language-model pretraining and few-label fine-tuning.
- ``gristmill.serve``: batch prediction, ONNX export and the HTTP service.
"""

__version__ = "0.1.0"

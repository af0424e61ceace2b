"""Inference: batch prediction, ONNX export and int8 quantization, generation, and the HTTP service.

The names below are imported on first use (``gristmill.lazy``), so ``import gristmill.serve`` loads no torch;
the HTTP service (``gristmill.serve.server``) needs the ``serve`` extra and is imported from its module.
"""

from gristmill.lazy import lazy_exports

_EXPORTS = {  # public name -> the module that defines it
    "Classifier": "gristmill.serve.classifier", "MaskFiller": "gristmill.serve.fill_mask",
    "PredictError": "gristmill.serve.backends", "Tagger": "gristmill.serve.tagger",
    "classifier_from": "gristmill.serve.loading", "load_classifier": "gristmill.serve.loading",
    "load_tagger": "gristmill.serve.loading", "predict_file": "gristmill.serve.predict",
    "predict_tags_file": "gristmill.serve.predict", "tagger_from": "gristmill.serve.loading",
    "GenerateError": "gristmill.serve.generate", "Sampling": "gristmill.serve.generate",
    "TextGenerator": "gristmill.serve.generate",
    "PerplexityError": "gristmill.serve.perplexity",
    "export_onnx": "gristmill.serve.onnx",
}

__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

"""The transformer encoder (embeddings, self-attention, blocks) and its heads, the decoder, the vocabulary
projection fused with its cross-entropy (the pretraining loss of both), plus HF import/export.

The names below are imported on first use (``gristmill.lazy``), so ``import gristmill.model`` loads no torch.
"""

from gristmill.lazy import lazy_exports

_EXPORTS = {  # public name -> the module that defines it
    "ConfigError": "gristmill.model.config", "DecoderConfig": "gristmill.model.config",
    "ModelConfig": "gristmill.model.config", "NAMED_SIZES": "gristmill.model.config",
    "read_config": "gristmill.model.config",
    "MaskedLM": "gristmill.model.transformer", "SequenceClassifier": "gristmill.model.transformer",
    "TokenClassifier": "gristmill.model.transformer",
    "CausalLM": "gristmill.model.decoder", "DecoderSequenceClassifier": "gristmill.model.decoder",
    "linear_cross_entropy": "gristmill.model.loss",
    "HFError": "gristmill.model.hf", "export_hf": "gristmill.model.hf", "import_hf": "gristmill.model.hf",
}

__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

"""The transformer encoder (embeddings, self-attention, blocks) and its heads, plus HF import/export."""

"""Document scorers for model-based filtering: the fast linear classifier, the hashed n-gram language
model, and the registry through which higher layers plug in their own scorers (fine-tuned encoders)."""

"""Tokenizer training (HF ``tokenizers``) and packed token shards for pretraining."""

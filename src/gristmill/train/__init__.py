"""Training: MLM pretraining loop, masking, checkpoints, and few-label fine-tuning."""

"""Training code for the VAT tokenizer: data preparation, the training loop, checkpoints and resume."""

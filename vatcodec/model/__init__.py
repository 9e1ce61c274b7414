"""The VAT tokenizer: config, layers, encoder, VVQ quantizer, triplane decoder, the model and its checkpoints."""

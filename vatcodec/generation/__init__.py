"""Image-conditioned next-scale generation: its config, the model, image encoders and inputs, sampling, checkpoints."""

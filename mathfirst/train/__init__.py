"""Supervised training and what every stage shares: SFT, self-distillation, optimizers, LoRA, precision,
checkpoints, metrics."""

"""Reinforcement learning: the DAPO loop, its policy losses, packing and log-probs, the prompt and domain
schedules."""

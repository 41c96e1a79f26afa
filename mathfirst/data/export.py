"""Write tiny-world tasks as parquet in verl's RL schema."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from mathfirst.data.domains import DOMAIN_NAMES
from mathfirst.data.world import generate_tasks


def export_parquet(out: Path, train_per_domain: int, heldout_per_domain: int, seed: int) -> dict[str, Path]:
    out.mkdir(parents=True, exist_ok=True)
    paths = {}
    for split, n in (("train", train_per_domain), ("heldout", heldout_per_domain)):
        rows = []
        for domain in DOMAIN_NAMES:
            rows += [t.to_row(split, len(rows) + i) for i, t in enumerate(generate_tasks(domain, split, n, seed))]
        paths[split] = out / f"{split}.parquet"
        pq.write_table(pa.Table.from_pylist(rows), paths[split])
    return paths

"""Which domain each prompt of an RL step comes from (`rl_*.schedule`):

- fixed: the stage's `domain_weights`, the paper's hand-set mixture.
- learnability: a bandit over domains that gives more of each step to the domains whose recent groups were
  informative (neither all right nor all wrong: the only groups a DAPO step learns from).
- transfer: learnability times (1 + alignment), where a domain's alignment is the mean cosine between its gradient
  and each other domain's (as Transfer-Aware Curriculum, arXiv 2606.25178). The gradients are those of the last
  weight matrix the stage trains, read between the micro-batches of the update, which are then made of one domain
  each: no extra forward or backward pass.

Every domain of positive weight keeps at least FLOOR / n of the draws, so none starves and each one's
learnability stays measured. The state is replayed from `<stage>/schedule.jsonl` (per step: the shares drawn
from, each domain's informative and sampled groups, the alignments measured), so a resumed stage schedules as the
uninterrupted one would."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import torch

from mathfirst.config import RLConfig
from mathfirst.model import trainable
from mathfirst.rl.packing import micro_batches
from mathfirst.rl.prompt_selection import DECAY  # one half-life for what the loop remembers of prompts and domains
from mathfirst.train.metrics import MetricsLog, read_metrics

SCHEDULE_FILE = "schedule.jsonl"
FLOOR = 0.2  # the share of every step spread evenly over the domains, whatever the bandit thinks


class DomainSchedule:
    """Per-domain sampling shares for the next step, from decayed counts of informative groups and alignments."""

    def __init__(self, cfg: RLConfig, domains: list[str], stage_dir: Path, resume_step: int = 0):
        self.kind = cfg.schedule
        self.weights = {d: cfg.domain_weights.get(d, 1.0) for d in domains}
        self.log = MetricsLog(stage_dir / SCHEDULE_FILE, resume_step)  # drops the steps past the resumed one
        self.groups: dict[str, tuple[float, float]] = {}  # domain -> decayed (informative groups, groups)
        self.alignment: dict[str, float] = {}  # domain -> decayed mean cosine with the other domains' gradients
        for record in read_metrics(self.log.path):
            self.observe(record["groups"], record["alignment"])

    def learnability(self, domain: str) -> float:
        """The domain's recent share of informative groups, Laplace-smoothed (1/2 before any group)."""
        informative, n = self.groups.get(domain, (0.0, 0.0))
        return (informative + 1.0) / (n + 2.0)

    def score(self, domain: str) -> float:
        if self.kind == "learnability":
            return self.learnability(domain)
        return self.learnability(domain) * (1.0 + self.alignment.get(domain, 0.0))

    def shares(self) -> dict[str, float]:
        """The probability that a prompt of the next step comes from each domain."""
        live = {d: w for d, w in self.weights.items() if w > 0}
        if self.kind == "fixed":
            return {d: live.get(d, 0.0) / sum(live.values()) for d in self.weights}
        scores = {d: w * self.score(d) for d, w in live.items()}
        total = sum(scores.values())
        return {
            d: FLOOR / len(live) + (1 - FLOOR) * (scores[d] / total if total > 0 else 1 / len(live))
            if d in live
            else 0.0
            for d in self.weights
        }

    def observe(self, groups: dict[str, list[float]], alignment: dict[str, float]) -> None:
        """Fold in one step: per domain [informative groups, groups sampled] and the alignments measured."""
        for domain, (informative, n) in groups.items():
            i0, n0 = self.groups.get(domain, (0.0, 0.0))
            self.groups[domain] = (DECAY * i0 + informative, DECAY * n0 + n)
        for domain, cosine in alignment.items():
            self.alignment[domain] = DECAY * self.alignment.get(domain, 0.0) + (1 - DECAY) * cosine

    def record(
        self, step: int, shares: dict[str, float], groups: dict[str, list[float]], alignment: dict[str, float]
    ) -> None:
        """Log the step (for --resume) and fold it in."""
        self.log.log(step, shares=shares, groups=groups, alignment=alignment)
        self.observe(groups, alignment)

    def close(self) -> None:
        self.log.close()


def informative_counts(groups: list[tuple[str, list[float]]]) -> dict[str, list[float]]:
    """Per domain [groups whose scores differ, groups], from (domain, scores) pairs."""
    counts: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0])
    for domain, scores in groups:
        counts[domain][0] += len(set(scores)) > 1
        counts[domain][1] += 1
    return dict(counts)


def share_metrics(shares: dict[str, float]) -> dict[str, float]:
    """The step's domain shares as metrics (share_<domain>), where there is more than one domain."""
    return {f"share_{d}": round(s, 4) for d, s in shares.items()} if len(shares) > 1 else {}


class GradientProbe:
    """Per-domain gradients of the last weight matrix the stage trains, read during an update whose micro-batches
    are each of one domain: the growth of that matrix's .grad over a micro-batch belongs to its domain."""

    def __init__(self, model: torch.nn.Module, group_domains: list[str], group_size: int):
        self.param = [p for p in trainable(model) if p.dim() >= 2][-1]
        self.group_domains, self.group_size = group_domains, group_size
        self.sums: dict[str, torch.Tensor] = {}
        self.seen: torch.Tensor | None = None

    def domain_of(self, chunk: torch.Tensor) -> str:
        return self.group_domains[int(chunk[0]) // self.group_size]

    def micro_batches(
        self, batch: dict[str, torch.Tensor], chunks: list[torch.Tensor], rows: int
    ) -> list[list[torch.Tensor]]:
        """The update's micro-batches, each of one domain's chunks."""
        by_domain: dict[str, list[torch.Tensor]] = defaultdict(list)
        for chunk in chunks:
            by_domain[self.domain_of(chunk)].append(chunk)
        return [part for chunks_of in by_domain.values() for part in micro_batches(batch, chunks_of, rows)]

    def start(self) -> None:
        """A mini-batch begins: its gradients start from zero."""
        self.seen = None

    def read(self, part: list[torch.Tensor]) -> None:
        """After the backward of `part`: attribute the gradient it added to its domain."""
        grad = self.param.grad.detach().float().flatten()
        added = grad - self.seen if self.seen is not None else grad.clone()
        self.seen = grad.clone()
        domain = self.domain_of(part[0])
        self.sums[domain] = self.sums[domain] + added if domain in self.sums else added

    def alignment(self) -> dict[str, float]:
        """Each domain's mean cosine with the others' gradients (domains seen this update; none if only one)."""
        domains = list(self.sums)
        cos = {
            (a, b): float(torch.nn.functional.cosine_similarity(self.sums[a], self.sums[b], dim=0))
            for a in domains
            for b in domains
            if a != b
        }
        return (
            {a: round(sum(cos[a, b] for b in domains if b != a) / (len(domains) - 1), 4) for a in domains}
            if len(domains) > 1
            else {}
        )

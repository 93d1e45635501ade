"""TransE link prediction on a knowledge graph, for the coming chapter 09 (applications).

TransE (Bordes et al. 2013, "Translating Embeddings for Modeling Multi-relational Data", NeurIPS)
embeds entities and relations in one space and calls (h, r, t) plausible when e_h + r_r lands
near e_t: score = -||e_h + r_r - e_t||_p. It is trained with a margin between a true triple and
a corrupted one (head or tail replaced at random, `corrupt`; "bern" is Wang et al. 2014's TransH
rule) and judged by the filtered rank of the true head and tail among all entities
(`evaluate_link_prediction`, built on `ranking`). One translation cannot send one head to
several tails, so the per-category breakdown (1-to-1, 1-to-N, N-to-1, N-to-N, heads and tails
apart as in Bordes et al.'s Table 4) shows where TransE fails.
"""

from __future__ import annotations

import math
import numbers
from collections import defaultdict
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from . import ranking
from .modeling import ModelOutput

__all__ = ["TransEConfig", "TransEOutput", "TransE", "bern_probabilities", "corrupt", "score_all_tails",
           "score_all_heads", "evaluate_link_prediction", "train_transe", "CATEGORIES"]

CATEGORIES = ("1-to-1", "1-to-N", "N-to-1", "N-to-N")


def _is_int(x: object) -> bool:
    return isinstance(x, (int, np.integer)) and not isinstance(x, bool)


@dataclass
class TransEConfig:
    """TransE's sizes and loss; the defaults are among Bordes et al.'s grid (k = 50, L1, margin 1)."""
    n_entities: int        # rows of the entity table
    n_relations: int       # rows of the relation table
    dim: int = 50          # embedding size k (the paper tries 20 and 50)
    p_norm: int = 1        # the dissimilarity: L1 or L2 distance of e_h + r_r to e_t
    margin: float = 1.0    # gamma: how much farther a corrupted triple must be than the true one

    def __post_init__(self) -> None:
        for name in ("n_entities", "n_relations", "dim"):
            value = getattr(self, name)
            if not _is_int(value) or value < 1:
                raise ValueError(f"TransEConfig.{name} must be an int >= 1, got {value!r}")
        if not _is_int(self.p_norm) or self.p_norm not in (1, 2):
            raise ValueError(f"TransEConfig.p_norm must be 1 or 2, got {self.p_norm!r}")
        m = self.margin
        if not isinstance(m, numbers.Real) or isinstance(m, bool) or not 0 < m < math.inf:
            raise ValueError(f"TransEConfig.margin must be a number > 0, got {m!r}")

    @classmethod
    def tiny(cls, **overrides) -> TransEConfig:
        """A small setting for unit tests."""
        return cls(**{"n_entities": 10, "n_relations": 3, "dim": 8, **overrides})


@dataclass
class TransEOutput(ModelOutput):
    """`logits` holds the given triples' scores (minus the distance, higher is more plausible);
    `loss` is the margin ranking loss, only when negatives are given."""
    neg_scores: torch.Tensor | None = None  # the corrupted triples' scores, (batch,) or (batch, k)

    @property
    def scores(self) -> torch.Tensor | None:
        return self.logits


def _check_ids(x: object, name: str, n: int, dims: tuple[int, ...] = (1,)) -> torch.Tensor:
    if not isinstance(x, torch.Tensor) or x.dtype != torch.long or x.dim() not in dims:
        got = f"{x.dtype} {tuple(x.shape)}" if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"{name} must be a {' or '.join(f'{d}-D' for d in dims)} torch.long tensor of ids, got {got}")
    if x.numel() and x.device.type != "meta":  # a meta tensor has no values to check
        low, high = (int(v) for v in torch.aminmax(x))
        if low < 0 or high >= n:
            raise ValueError(f"{name} holds ids outside [0, {n}): min {low}, max {high}")
    return x


class TransE(nn.Module):
    """Entity and relation tables initialized as in Bordes et al.'s Algorithm 1: uniform in
    +-6/sqrt(k), relations L2-normalized once. Entities are L2-normalized before every step by
    `normalize_entities_` (the training loop calls it): without it the loss is lowered by
    growing the norms, since scaling every vector by c scales every distance by c and so
    pushes margin + c (d_pos - d_neg) below 0 without learning anything."""

    def __init__(self, config: TransEConfig) -> None:
        super().__init__()
        if not isinstance(config, TransEConfig):
            raise TypeError(f"config must be a TransEConfig, got {type(config).__name__}")
        self.config = config
        self.entity = nn.Embedding(config.n_entities, config.dim)
        self.relation = nn.Embedding(config.n_relations, config.dim)
        bound = 6 / math.sqrt(config.dim)
        with torch.no_grad():
            nn.init.uniform_(self.entity.weight, -bound, bound)
            nn.init.uniform_(self.relation.weight, -bound, bound)
            self.relation.weight.div_(torch.linalg.vector_norm(self.relation.weight, dim=-1, keepdim=True))

    @torch.no_grad()
    def normalize_entities_(self) -> TransE:
        """Every entity vector to unit L2 norm, in place (the paper's step before each minibatch)."""
        w = self.entity.weight
        w.div_(torch.linalg.vector_norm(w, dim=-1, keepdim=True).clamp_min(1e-12))
        return self

    def score(self, heads: torch.Tensor, relations: torch.Tensor, tails: torch.Tensor) -> torch.Tensor:
        """-||e_h + r_r - e_t||_p, broadcast over the ids' shapes; no input checks (forward has them)."""
        diff = self.entity(heads) + self.relation(relations) - self.entity(tails)
        return -torch.linalg.vector_norm(diff, ord=self.config.p_norm, dim=-1)

    def forward(self, heads: torch.Tensor, relations: torch.Tensor, tails: torch.Tensor,
                neg_heads: torch.Tensor | None = None, neg_tails: torch.Tensor | None = None) -> TransEOutput:
        """Scores of the (batch,) triples; with negatives, mean(max(0, margin - s_pos + s_neg)).

        A corrupted triple takes neg_heads and neg_tails where given and the true ones elsewhere
        (so pass both, as `corrupt` returns them, or only the replaced side). Negatives are
        (batch,), one per triple, or (batch, k), k per triple."""
        n_e, n_r = self.config.n_entities, self.config.n_relations
        heads, tails = _check_ids(heads, "heads", n_e), _check_ids(tails, "tails", n_e)
        relations = _check_ids(relations, "relations", n_r)
        if not heads.shape == relations.shape == tails.shape:
            raise ValueError(f"heads, relations and tails must have one shape, got {tuple(heads.shape)}, "
                             f"{tuple(relations.shape)} and {tuple(tails.shape)}")
        pos = self.score(heads, relations, tails)
        if neg_heads is None and neg_tails is None:
            return TransEOutput(logits=pos)
        negs = {}
        for name, x in (("neg_heads", neg_heads), ("neg_tails", neg_tails)):
            if x is not None:
                negs[name] = _check_ids(x, name, n_e, dims=(1, 2))
                if x.shape[0] != heads.shape[0]:
                    raise ValueError(f"{name} must have {heads.shape[0]} rows, one per triple, got {tuple(x.shape)}")
        shapes = {tuple(x.shape) for x in negs.values()}
        if len(shapes) > 1:
            raise ValueError(f"neg_heads and neg_tails must have one shape, got {sorted(shapes)}")
        wide = next(iter(negs.values())).dim() == 2
        h, r, t = (x.unsqueeze(-1) if wide else x for x in (heads, relations, tails))
        neg = self.score(negs.get("neg_heads", h), r, negs.get("neg_tails", t))
        pos_b = pos.unsqueeze(-1) if wide else pos
        loss = torch.relu(self.config.margin - pos_b + neg).mean()
        return TransEOutput(logits=pos, loss=loss, neg_scores=neg)


def _as_triples(triples: object, name: str) -> torch.Tensor:
    t = triples if isinstance(triples, torch.Tensor) else torch.as_tensor(list(triples), dtype=torch.long)
    if t.dtype != torch.long or t.dim() != 2 or t.shape[1] != 3 or t.shape[0] == 0:
        raise ValueError(f"{name} must be a non-empty (n, 3) list or torch.long tensor of (head, relation, tail) "
                         f"ids, got {t.dtype} {tuple(t.shape)}")
    return t


def bern_probabilities(triples, n_relations: int) -> torch.Tensor:
    """(n_relations,) CPU tensor: the chance that "bern" replaces the head, tph / (tph + hpt).

    tph is the mean number of tails per (head, relation), hpt of heads per (relation, tail)
    (repeats counted once). A 1-to-N relation has a large tph: replacing its tail would often
    give another true triple (a false negative), so its head is replaced instead. A relation
    absent from the triples gets 0.5, the "unif" rule."""
    if not _is_int(n_relations) or n_relations < 1:
        raise ValueError(f"n_relations must be an int >= 1, got {n_relations!r}")
    t = _as_triples(triples, "triples")
    _check_ids(t[:, 1].cpu(), "triples' relations", n_relations)
    tails, heads = defaultdict(set), defaultdict(set)
    for h, r, tt in t.cpu().tolist():
        tails[r, h].add(tt)
        heads[r, tt].add(h)
    out = torch.full((n_relations,), 0.5, dtype=torch.float64)
    for r in {r for r, _ in tails}:
        tph = np.mean([len(v) for (rr, _), v in tails.items() if rr == r])
        hpt = np.mean([len(v) for (rr, _), v in heads.items() if rr == r])
        out[r] = tph / (tph + hpt)
    return out


def corrupt(triples: torch.Tensor, n_entities: int, generator: torch.Generator, mode: str = "unif",
            stats: torch.Tensor | None = None) -> torch.Tensor:
    """Each (head, relation, tail) row with its head or its tail replaced by a uniform entity.

    "unif" replaces either side with probability 1/2; "bern" replaces the head with probability
    stats[relation] (pass `bern_probabilities(train_triples, n_relations)`). The relation and the
    other side are kept. As in Bordes et al., the new entity is drawn from all entities, so with
    probability 1/n_entities it is the old one and the row equals the true triple; such a row adds
    the constant margin to the loss and no gradient, cheaper than a rejection loop. The draws are
    made on the generator's device (a CPU generator gives the same negatives on every device) and
    the result is on the device of `triples`."""
    if not isinstance(triples, torch.Tensor) or triples.dtype != torch.long or triples.dim() != 2 \
            or triples.shape[1] != 3:
        got = f"{triples.dtype} {tuple(triples.shape)}" if isinstance(triples, torch.Tensor) else type(triples).__name__
        raise ValueError(f"triples must be a (batch, 3) torch.long tensor, got {got}")
    if not _is_int(n_entities) or n_entities < 1:
        raise ValueError(f"n_entities must be an int >= 1, got {n_entities!r}")
    if not isinstance(generator, torch.Generator):
        raise ValueError(f"generator must be a torch.Generator, got {type(generator).__name__}")
    if mode not in ("unif", "bern"):
        raise ValueError(f"mode must be 'unif' or 'bern', got {mode!r}")
    if mode == "bern" and not isinstance(stats, torch.Tensor):
        raise ValueError("stats must be given for mode='bern': pass bern_probabilities(train_triples, n_relations)")
    dev, b = triples.device, triples.shape[0]
    coin = torch.rand(b, generator=generator, device=generator.device).to(dev)
    new = torch.randint(n_entities, (b,), generator=generator, device=generator.device).to(dev)
    p_head = stats.to(dev, torch.float32)[triples[:, 1]] if mode == "bern" else 0.5
    head = coin < p_head
    out = triples.clone()
    out[:, 0] = torch.where(head, new, triples[:, 0])
    out[:, 2] = torch.where(head, triples[:, 2], new)
    return out


def score_all_tails(model: TransE, heads: torch.Tensor, relations: torch.Tensor) -> torch.Tensor:
    """(batch, n_entities): the score of (h, r, e) for every entity e, the same arithmetic as
    `TransE.score` (e_h + r first, then minus e) so ties are as exact there as here."""
    query = model.entity(heads) + model.relation(relations)
    diff = query.unsqueeze(1) - model.entity.weight.unsqueeze(0)
    return -torch.linalg.vector_norm(diff, ord=model.config.p_norm, dim=-1)


def score_all_heads(model: TransE, relations: torch.Tensor, tails: torch.Tensor) -> torch.Tensor:
    """(batch, n_entities): the score of (e, r, t) for every entity e."""
    diff = model.entity.weight.unsqueeze(0) + model.relation(relations).unsqueeze(1) - model.entity(tails).unsqueeze(1)
    return -torch.linalg.vector_norm(diff, ord=model.config.p_norm, dim=-1)


@torch.no_grad()
def evaluate_link_prediction(model: TransE, test_triples, all_triples, ties: str = "mean", filtered: bool = True,
                             batch_size: int = 256) -> dict:
    """{"overall": metrics, "by_category": {category: {"head": metrics, "tail": metrics}}}.

    Every test triple is asked twice, its head and its tail, each ranked among all entities by
    `ranking.filtered_rank` (filtered: the other entities that complete it in all_triples are
    removed; filtered=False gives the raw rank); metrics are `ranking.link_prediction_metrics`.
    Categories come from `ranking.relation_categories(all_triples)`; a category without test
    triples is left out. all_triples must hold the test triples. ties="mean" by default, so that
    a model giving every entity one score does not get rank 1."""
    test, known = _as_triples(test_triples, "test_triples").cpu(), _as_triples(all_triples, "all_triples").cpu()
    missing = set(map(tuple, test.tolist())) - set(map(tuple, known.tolist()))
    if missing:
        raise ValueError("all_triples must hold every test triple (train + valid + test), "
                         f"missing {sorted(missing)[:3]}")
    category = ranking.relation_categories(known.tolist())
    true_tails, true_heads = defaultdict(list), defaultdict(list)
    for h, r, t in known.tolist():
        true_tails[h, r].append(t)
        true_heads[r, t].append(h)
    dev = model.entity.weight.device
    ranks = {"head": [], "tail": []}
    for start in range(0, test.shape[0], batch_size):
        rows = test[start:start + batch_size]
        h, r, t = (rows[:, i].to(dev) for i in range(3))
        side_scores = {"head": score_all_heads(model, r, t).cpu().numpy(),
                       "tail": score_all_tails(model, h, r).cpu().numpy()}
        for i, (hh, rr, tt) in enumerate(rows.tolist()):
            for side, true, others in (("head", hh, true_heads[rr, tt]), ("tail", tt, true_tails[hh, rr])):
                ranks[side].append((category[rr], ranking.filtered_rank(
                    side_scores[side][i], true, others if filtered else (), ties=ties)))
    overall = ranking.link_prediction_metrics([x for side in ranks.values() for _, x in side])
    by_category = {}
    for cat in CATEGORIES:
        got = {side: [x for c, x in ranks[side] if c == cat] for side in ranks}
        if got["head"]:
            by_category[cat] = {side: ranking.link_prediction_metrics(v) for side, v in got.items()}
    return {"overall": overall, "by_category": by_category}


def train_transe(model: TransE, train_triples, steps: int = 500, batch_size: int = 128, lr: float = 0.01,
                 seed: int = 0, mode: str = "unif") -> list[float]:
    """Bordes et al.'s Algorithm 1 for `steps` minibatches; returns each step's loss.

    Each step normalizes the entities, draws batch_size training triples (with replacement) and
    one corrupted triple each, and takes an Adam step. The paper used plain SGD, its step size
    tuned over {0.001, 0.01, 0.1}, for up to 1000 epochs; Adam (PyKEEN's default for TransE)
    fits in a few hundred steps with one step size across sizes, which the chapter's time budget
    needs. The entities are normalized once more at the end, so evaluation sees the constraint.
    All draws come from a CPU generator seeded with `seed`: the same model, triples and seed give
    the same losses and weights (the model's own init is the caller's, e.g. `repro.set_seed`)."""
    if not isinstance(model, TransE):
        raise TypeError(f"model must be a TransE, got {type(model).__name__}")
    for name, value, low in (("steps", steps, 0), ("batch_size", batch_size, 1), ("seed", seed, 0)):
        if not _is_int(value) or value < low:
            raise ValueError(f"{name} must be an int >= {low}, got {value!r}")
    if not isinstance(lr, numbers.Real) or isinstance(lr, bool) or not 0 < lr < math.inf:
        raise ValueError(f"lr must be a number > 0, got {lr!r}")
    if mode not in ("unif", "bern"):
        raise ValueError(f"mode must be 'unif' or 'bern', got {mode!r}")
    cfg, dev = model.config, model.entity.weight.device
    train = _as_triples(train_triples, "train_triples")
    _check_ids(train[:, [0, 2]].reshape(-1).cpu(), "train_triples' entities", cfg.n_entities)
    stats = bern_probabilities(train, cfg.n_relations) if mode == "bern" else None
    train, gen = train.to(dev), torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    losses = []
    for _ in range(steps):
        model.normalize_entities_()
        pos = train[torch.randint(train.shape[0], (batch_size,), generator=gen).to(dev)]
        neg = corrupt(pos, cfg.n_entities, gen, mode, stats)
        out = model(pos[:, 0], pos[:, 1], pos[:, 2], neg_heads=neg[:, 0], neg_tails=neg[:, 2])
        opt.zero_grad()
        out.loss.backward()
        opt.step()
        losses.append(float(out.loss.detach()))
    model.normalize_entities_()
    return losses

"""kg: TransE's score and margin loss by hand, corruption (unif and bern) and its rates, all-entity
scores against a loop, filtered link prediction on hand-set embeddings with known ranks, a planted
graph learned, a smoke run on the toy world's graph, determinism, the meta device, config errors."""

from __future__ import annotations

import math

import pytest
import torch

from lmbook_utils import ranking
from lmbook_utils.kg import (TransE, TransEConfig, bern_probabilities, corrupt, evaluate_link_prediction,
                             score_all_heads, score_all_tails, train_transe)
from lmbook_utils.toyworld.app_views import knowledge_graph

torch.set_num_threads(1)  # the test machine is shared: one thread, as the brief of this file asks

META = torch.device("meta")


def _ids(*xs: int) -> torch.Tensor:
    return torch.tensor(xs, dtype=torch.long)


def _set(model: TransE, entities, relations) -> TransE:
    with torch.no_grad():
        model.entity.weight.copy_(torch.tensor(entities, dtype=torch.float32))
        model.relation.weight.copy_(torch.tensor(relations, dtype=torch.float32))
    return model


def _hand_model(p_norm: int = 1, margin: float = 1.0) -> TransE:
    # e0 = (0, 0), e1 = (1, 2), e2 = (3, 0); r0 = (0.5, -1)
    return _set(TransE(TransEConfig(3, 1, dim=2, p_norm=p_norm, margin=margin)), [[0, 0], [1, 2], [3, 0]], [[0.5, -1]])


@pytest.mark.parametrize("p_norm, expected", [(1, [-3.5, -2.5]), (2, [-math.sqrt(9.25), -math.sqrt(3.25)])])
def test_score_worked_by_hand_in_two_dimensions(p_norm, expected):
    # (0, r0, 1): e0 + r0 - e1 = (-0.5, -3); (1, r0, 0): e1 + r0 - e0 = (1.5, 1)
    out = _hand_model(p_norm)(_ids(0, 1), _ids(0, 0), _ids(1, 0))
    assert out.scores.tolist() == pytest.approx(expected)
    assert out.loss is None and out.neg_scores is None and out.logits is out.scores


def test_margin_loss_worked_by_hand():
    model = _hand_model(1)
    # positives (0, r, 1) s = -3.5 and (1, r, 0) s = -2.5; negatives (0, r, 2): (-2.5, -1) -> -3.5 and
    # (1, r, 2): (-1.5, 1) -> -2.5. Losses max(0, 1 + 3.5 - 3.5) = 1 and max(0, 1 + 2.5 - 2.5) = 1.
    out = model(_ids(0, 1), _ids(0, 0), _ids(1, 0), neg_tails=_ids(2, 2))
    assert out.neg_scores.tolist() == pytest.approx([-3.5, -2.5])
    assert out.loss.item() == pytest.approx(1.0)
    # a far-off negative: (2, r, 1) = (2.5, -3) -> -5.5 for the first positive: max(0, 1 + 3.5 - 5.5) = 0;
    # the second keeps (1, r, 2): mean (0 + 1) / 2. Both sides given, as corrupt returns them.
    out = model(_ids(0, 1), _ids(0, 0), _ids(1, 0), neg_heads=_ids(2, 1), neg_tails=_ids(1, 2))
    assert out.neg_scores.tolist() == pytest.approx([-5.5, -2.5]) and out.loss.item() == pytest.approx(0.5)
    # k = 2 negatives per positive, (batch, k): the mean of the four hinge values 1, 0, 1, 1
    out = model(_ids(0, 1), _ids(0, 0), _ids(1, 0), neg_heads=torch.tensor([[0, 2], [1, 1]]),
                neg_tails=torch.tensor([[2, 1], [2, 2]]))
    assert out.neg_scores.shape == (2, 2) and out.loss.item() == pytest.approx(0.75)


def test_init_and_why_entities_are_normalized():
    model = TransE(TransEConfig(20, 4, dim=25))
    bound = 6 / math.sqrt(25)
    assert model.entity.weight.abs().max() <= bound and model.entity.weight.abs().max() > 0.9 * bound
    assert torch.linalg.vector_norm(model.relation.weight, dim=-1).tolist() == pytest.approx([1.0] * 4)
    model.normalize_entities_()
    assert torch.linalg.vector_norm(model.entity.weight, dim=-1).tolist() == pytest.approx([1.0] * 20)
    # the reason: scaling every vector by c scales every distance by c, so once a negative is
    # farther than its positive the hinge margin + c (d_pos - d_neg) can be driven to 0 by c alone.
    # Margin 2, positive (1, r, 2): e1 + r - e2 = (-1.5, 1), d_pos = 2.5; negative (0, r, 2):
    # (-2.5, -1), d_neg = 3.5; hinge 2 + 2.5 - 3.5 = 1 at c = 1, max(0, 2 - 10) = 0 at c = 10
    model = _hand_model(1, margin=2.0)
    pair = dict(heads=_ids(1), relations=_ids(0), tails=_ids(2), neg_heads=_ids(0))
    assert model(**pair).loss.item() == pytest.approx(1.0)
    with torch.no_grad():
        model.entity.weight.mul_(10)
        model.relation.weight.mul_(10)
    assert model(**pair).loss.item() == 0.0


def test_corrupt_keeps_one_side_and_redraws_the_old_entity_at_rate_one_over_n():
    n, b = 5, 20000
    gen = torch.Generator().manual_seed(0)
    triples = torch.stack([torch.randint(n, (b,), generator=gen), torch.randint(3, (b,), generator=gen),
                           torch.randint(n, (b,), generator=gen)], 1)
    out = corrupt(triples, n, torch.Generator().manual_seed(1))
    assert out.shape == triples.shape and out.dtype == torch.long and ((out >= 0) & (out < n)).all()
    assert torch.equal(out[:, 1], triples[:, 1])  # the relation is never touched
    head_same, tail_same = out[:, 0] == triples[:, 0], out[:, 2] == triples[:, 2]
    assert (head_same | tail_same).all()  # the side not replaced is kept, always
    # the replaced side is drawn from all n entities, the old one included: 1/n of the rows are
    # the true triple again (binomial sd sqrt(0.2 * 0.8 / 20000) = 0.003)
    assert (head_same & tail_same).float().mean().item() == pytest.approx(1 / n, abs=0.015)
    # unif: the head is changed in 1/2 * (1 - 1/n) of the rows, and so is the tail
    assert (~head_same).float().mean().item() == pytest.approx(0.5 * (1 - 1 / n), abs=0.015)
    assert (~tail_same).float().mean().item() == pytest.approx(0.5 * (1 - 1 / n), abs=0.015)


def test_bern_probabilities_by_hand_and_their_rate():
    # relation 0 is 1-to-N: head 0 with tails 1..4 (tph 4, hpt 1) -> 4 / 5; relation 1 is N-to-1:
    # heads 1..3 -> tail 0 (tph 1, hpt 3) -> 1 / 4; relation 2 has no triple -> 0.5; a repeat counts once
    triples = [(0, 0, t) for t in (1, 2, 3, 4)] + [(h, 1, 0) for h in (1, 2, 3)] + [(0, 0, 1)]
    p = bern_probabilities(triples, 3)
    assert p.tolist() == pytest.approx([0.8, 0.25, 0.5])
    assert ranking.relation_categories(triples) == {0: "1-to-N", 1: "N-to-1"}
    n, b = 10, 20000
    batch = torch.tensor([(0, 0, 1), (1, 1, 0)] * (b // 2))
    out = corrupt(batch, n, torch.Generator().manual_seed(0), mode="bern", stats=p)
    head_changed = out[:, 0] != batch[:, 0]
    for r, p_head in ((0, 0.8), (1, 0.25)):  # a changed head: chosen (p_head) and not redrawn as itself
        assert head_changed[batch[:, 1] == r].float().mean().item() == pytest.approx(p_head * (1 - 1 / n), abs=0.02)
    with pytest.raises(ValueError, match="stats"):
        corrupt(batch, n, torch.Generator(), mode="bern")
    with pytest.raises(ValueError, match="mode"):
        corrupt(batch, n, torch.Generator(), mode="uniform")


@pytest.mark.parametrize("p_norm", [1, 2])
def test_score_all_tails_and_heads_equal_a_loop_of_scores(p_norm):
    torch.manual_seed(0)
    model = TransE(TransEConfig(7, 3, dim=5, p_norm=p_norm)).normalize_entities_()
    heads, rels, tails = _ids(0, 3, 6, 2), _ids(2, 0, 1, 1), _ids(1, 1, 5, 2)
    with torch.no_grad():
        all_t, all_h = score_all_tails(model, heads, rels), score_all_heads(model, rels, tails)
        loop_t = torch.tensor([[model.score(_ids(h), _ids(r), _ids(e)).item() for e in range(7)]
                               for h, r in zip(heads.tolist(), rels.tolist())])
        loop_h = torch.tensor([[model.score(_ids(e), _ids(r), _ids(t)).item() for e in range(7)]
                               for r, t in zip(rels.tolist(), tails.tolist())])
    assert all_t.shape == all_h.shape == (4, 7)
    torch.testing.assert_close(all_t, loop_t, rtol=0, atol=1e-6)
    torch.testing.assert_close(all_h, loop_h, rtol=0, atol=1e-6)


def test_link_prediction_on_hand_set_embeddings_with_known_ranks():
    # a perfect translation: e_i = (i, 0), r = (1, 0), facts (i, r, i + 1). Tail i + 1 is at distance
    # 0 and every other entity at >= 1; head i likewise: every rank is 1, filtered or not
    line = [(i, 0, i + 1) for i in range(4)]
    model = _set(TransE(TransEConfig(5, 1, dim=2)), [[i, 0] for i in range(5)], [[1, 0]])
    for filtered in (True, False):
        got = evaluate_link_prediction(model, line, line, filtered=filtered)
        assert got["overall"]["mrr"] == 1.0 and got["overall"]["n"] == 8
        assert set(got["by_category"]) == {"1-to-1"}
    # a planted competitor: (0, r, 1) and (0, r, 2) are both true (a 1-to-N relation); e0 = (0, 0),
    # r = (1, 0), e1 = (1, 0) at distance 0, e2 = (1, 0.5) at 0.5, e3 = (5, 5) far. Asking the tail
    # of (0, r, 2): raw rank 2 (e1 is closer), filtered 1 (e1 also completes it). Its head: e0 + r -
    # e2 = (0, -0.5) is the best (e1: 1.5, e2: 1, e3: 10.5), rank 1 either way
    model = _set(TransE(TransEConfig(4, 1, dim=2)), [[0, 0], [1, 0], [1, 0.5], [5, 5]], [[1, 0]])
    known = [(0, 0, 1), (0, 0, 2)]
    raw = evaluate_link_prediction(model, [(0, 0, 2)], known, filtered=False)
    flt = evaluate_link_prediction(model, [(0, 0, 2)], known)
    assert raw["by_category"]["1-to-N"]["tail"]["mean_rank"] == 2.0
    assert flt["by_category"]["1-to-N"]["tail"]["mean_rank"] == 1.0
    assert raw["by_category"]["1-to-N"]["head"]["mean_rank"] == flt["by_category"]["1-to-N"]["head"]["mean_rank"] == 1
    assert raw["overall"]["mrr"] == pytest.approx((1 + 1 / 2) / 2) and flt["overall"]["mrr"] == 1.0
    # ties: every entity at one point gives every candidate one score; the mean rank of 4
    # candidates is 1 + 3 / 2 = 2.5 (raw), the optimistic one 1
    flat = _set(TransE(TransEConfig(4, 1, dim=2)), [[0, 0]] * 4, [[0, 0]])
    assert evaluate_link_prediction(flat, [(0, 0, 2)], known, filtered=False)["overall"]["mean_rank"] == 2.5
    assert evaluate_link_prediction(flat, [(0, 0, 2)], known, filtered=False, ties="optimistic")["overall"]["mrr"] == 1
    with pytest.raises(ValueError, match="all_triples"):
        evaluate_link_prediction(model, [(0, 0, 3)], known)


def test_training_learns_a_planted_line():
    # entities 0..9 on a line, one relation "+1 step": (i, r, i + 1). Each query has one answer (the
    # relation is 1-to-1, so filtering removes nothing) and an embedding ranking every answer first
    # exists in 16 dimensions: entities spread along r's direction, each e_i + r nearest e_{i+1}.
    # Training fits what it can represent, so Hits@1 on the facts themselves is checked: >= 0.9 of
    # the 18 queries (17 right) leaves one miss as slack; 10 of 10 seeds tried reached 1.0 at 600 steps
    line = [(i, 0, i + 1) for i in range(9)]
    for seed in (0, 1):
        torch.manual_seed(seed)
        model = TransE(TransEConfig(10, 1, dim=16))
        before = evaluate_link_prediction(model.normalize_entities_(), line, line)["overall"]["hits@1"]
        losses = train_transe(model, line, steps=600, batch_size=16, lr=0.01, seed=seed)
        got = evaluate_link_prediction(model, line, line)["overall"]
        assert got["hits@1"] >= 0.9 > before, (seed, before, got)
        assert sum(losses[-50:]) < sum(losses[:50]) / 3


def test_smoke_on_the_toy_world_graph():
    kg = knowledge_graph(n_stories=300, seed=0)
    torch.manual_seed(0)
    model = TransE(TransEConfig(len(kg.entities), len(kg.relations)))
    losses = train_transe(model, kg.ids("train"), steps=50, batch_size=64, seed=0, mode="bern")
    assert len(losses) == 50 and all(math.isfinite(x) for x in losses)
    got = evaluate_link_prediction(model, kg.ids("test"), kg.ids("train") + kg.ids("valid") + kg.ids("test"))
    assert got["overall"]["n"] == 2 * len(kg.test)
    assert all(math.isfinite(v) for v in got["overall"].values())
    assert set(got["by_category"]) <= {"1-to-1", "1-to-N", "N-to-1", "N-to-N"} and got["by_category"]


def test_training_is_deterministic_under_its_seed():
    line = [(i, 0, i + 1) for i in range(5)] + [(i, 1, i) for i in range(6)]

    def run(seed: int, mode: str):
        torch.manual_seed(3)
        model = TransE(TransEConfig.tiny(n_entities=6, n_relations=2))
        return train_transe(model, line, steps=20, batch_size=8, seed=seed, mode=mode), model.entity.weight

    for mode in ("unif", "bern"):
        (l1, w1), (l2, w2), (l3, w3) = run(0, mode), run(0, mode), run(1, mode)
        assert l1 == l2 and torch.equal(w1, w2)
        assert l1 != l3 and not torch.equal(w1, w3)


def test_forward_corrupt_and_all_entity_scores_run_on_meta():
    model = TransE(TransEConfig.tiny()).to(META)
    ids = torch.zeros(4, dtype=torch.long, device=META)
    out = model(ids, ids, ids, neg_heads=ids, neg_tails=ids)
    assert out.scores.device == out.loss.device == out.neg_scores.device == META and out.scores.shape == (4,)
    wide = torch.zeros(4, 3, dtype=torch.long, device=META)
    assert model(ids, ids, ids, neg_tails=wide).neg_scores.shape == (4, 3)
    model.normalize_entities_()
    assert model.entity.weight.device == META
    triples = torch.zeros(4, 3, dtype=torch.long, device=META)
    for mode, stats in (("unif", None), ("bern", torch.full((3,), 0.5))):
        got = corrupt(triples, 10, torch.Generator().manual_seed(0), mode=mode, stats=stats)
        assert got.device == META and got.shape == (4, 3)
    assert score_all_tails(model, ids, ids).device == META and score_all_tails(model, ids, ids).shape == (4, 10)
    assert score_all_heads(model, ids, ids).device == META and score_all_heads(model, ids, ids).shape == (4, 10)


@pytest.mark.parametrize("field, value", [("n_entities", 0), ("n_relations", True), ("dim", 2.0),
                                          ("p_norm", 3), ("margin", 0.0), ("margin", float("nan"))])
def test_config_errors_name_the_field(field, value):
    with pytest.raises(ValueError, match=f"TransEConfig.{field}"):
        TransEConfig.tiny(**{field: value})


def test_bad_inputs_are_named():
    model = TransE(TransEConfig.tiny())
    with pytest.raises(ValueError, match="tails holds ids outside"):
        model(_ids(0), _ids(0), _ids(10))
    with pytest.raises(ValueError, match="relations holds ids outside"):
        model(_ids(0), _ids(3), _ids(1))
    with pytest.raises(ValueError, match="heads must be"):
        model(torch.tensor([0.0]), _ids(0), _ids(1))
    with pytest.raises(ValueError, match="neg_tails must have 1 rows"):
        model(_ids(0), _ids(0), _ids(1), neg_tails=_ids(1, 2))
    with pytest.raises(ValueError, match="triples must be"):
        corrupt(_ids(0, 1, 2), 10, torch.Generator())

"""permutation_lm: a chosen order's masks, its log-probability in one pass against the chain rule
computed one prediction at a time with Hugging Face's XLNet, the two-token joints of BERT and
XLNet, the training loss, bad input."""

from __future__ import annotations

import math

import pytest
import torch

from lmbook_utils.bert import Bert, BertConfig
from lmbook_utils.permutation_lm import (log_prob_under_order, order_inputs, pair_log_probs_bert,
                                         pair_log_probs_xlnet, permutation_lm_loss)
from lmbook_utils.xlnet import XLNet, XLNetConfig, from_hf_state_dict, sample_permutation

torch.set_num_threads(2)
transformers = pytest.importorskip("transformers")
VOCAB = 19


def random_pair(seed: int = 0):
    """Hugging Face's XLNetLMHeadModel with random weights (scale 0.2) and ours with the same weights."""
    cfg = XLNetConfig(vocab_size=VOCAB, d_model=16, n_layers=2, n_heads=2, d_inner=32, dropout=0.0)
    hf = transformers.XLNetLMHeadModel(transformers.XLNetConfig(
        vocab_size=VOCAB, d_model=16, n_layer=2, n_head=2, d_inner=32, dropout=0.0, pad_token_id=0,
        bos_token_id=None, eos_token_id=None, layer_norm_eps=cfg.layer_norm_eps)).eval()
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in hf.named_parameters():
            p.copy_(1 + 0.1 * torch.randn(p.shape, generator=g) if name.endswith("layer_norm.weight")
                    else 0.2 * torch.randn(p.shape, generator=g))
    ours = XLNet(cfg).eval()
    from_hf_state_dict(ours, hf)
    return ours, hf


def test_order_inputs_follow_the_rule_written_out():
    order = torch.tensor([[2, 0, 3, 1, 4]])
    predict = torch.tensor([[False, True, True, False, True]])  # positions 1, 2, 4; 0 and 3 are context
    perm_mask, target_mapping = order_inputs(order, predict)
    steps = [p for p in order[0].tolist() if predict[0, p]]
    rank = {p: (steps.index(p) if p in steps else -1) for p in range(5)}  # context before every step
    for i in range(5):
        for j in range(5):
            blocked = bool(predict[0, j]) and rank[j] >= rank[i]
            assert bool(perm_mask[0, i, j]) == blocked, (i, j)
    assert torch.equal(target_mapping[0], torch.eye(5))


def test_order_inputs_equal_the_samplers_masks_for_its_own_order():
    ids = torch.randint(1, VOCAB, (4, 12), generator=torch.Generator().manual_seed(1))
    p = sample_permutation(ids, k=3, generator=torch.Generator().manual_seed(2))
    predict = torch.zeros(4, 12, dtype=torch.bool)
    predict[torch.arange(4)[:, None], p.order[:, -4:]] = True  # the last 12 // 3 of each order
    perm_mask, _ = order_inputs(p.order, predict)
    assert torch.equal(perm_mask, p.perm_mask)


def test_one_pass_log_prob_equals_hugging_faces_xlnet_one_prediction_at_a_time():
    ours, hf = random_pair()
    ids = torch.randint(1, VOCAB, (2, 6), generator=torch.Generator().manual_seed(3))
    order = torch.tensor([[3, 0, 5, 1, 4, 2], [0, 1, 2, 3, 4, 5]])
    predict = torch.tensor([[True, True, True, True, True, False],  # position 5 is context
                            [False, True, True, True, True, True]])  # position 0 is context
    got = log_prob_under_order(ours, ids, order, predict)
    for b in range(2):
        steps = [p for p in order[b].tolist() if predict[b, p]]
        rank = {p: (steps.index(p) if p in steps else -1) for p in range(6)}  # context before every step
        perm = torch.tensor([[[float(predict[b, j] and rank[j] >= rank[i]) for j in range(6)] for i in range(6)]])
        total = 0.0
        for p in steps:  # each prediction alone: one query-stream row, Hugging Face's model
            mapping = torch.zeros(1, 1, 6)
            mapping[0, 0, p] = 1.0
            with torch.no_grad():
                logits = hf(ids[b:b + 1], perm_mask=perm, target_mapping=mapping).logits
            total += float(logits[0, 0].log_softmax(-1)[ids[b, p]])
        assert math.isclose(float(got[b]), total, abs_tol=1e-4), (b, float(got[b]), total)


def test_context_is_seen_by_all_and_sees_no_prediction_wherever_it_sits_in_the_order():
    order = torch.tensor([[2, 0, 1]])
    perm_mask, _ = order_inputs(order, torch.tensor([[True, False, True]]))
    # position 2 (step 0) sees the context; 0 (step 1) sees 2; the context sees neither
    assert perm_mask[0].tolist() == [[1, 0, 0], [1, 0, 1], [1, 0, 1]]


def test_a_targets_own_token_and_later_ones_do_not_move_the_log_prob_of_earlier_steps():
    ours, _ = random_pair(1)
    ids = torch.randint(1, VOCAB, (1, 5), generator=torch.Generator().manual_seed(4))
    order, predict = torch.tensor([[4, 2, 0, 1, 3]]), torch.tensor([[False, True, True, True, True]])
    perm_mask, target_mapping = order_inputs(order, predict)
    with torch.no_grad():
        before = ours(ids, perm_mask=perm_mask, target_mapping=target_mapping).logits
        changed = ids.clone()
        changed[0, 3] = (changed[0, 3] + 1) % VOCAB  # the last position of the order
        after = ours(changed, perm_mask=perm_mask, target_mapping=target_mapping).logits
    torch.testing.assert_close(after[0, [4, 2, 1, 3]], before[0, [4, 2, 1, 3]])  # earlier steps and its own row
    changed[0, 4] = (changed[0, 4] + 1) % VOCAB  # the first prediction: later ones read it
    with torch.no_grad():
        moved = ours(changed, perm_mask=perm_mask, target_mapping=target_mapping).logits
    assert not torch.allclose(moved[0, [2, 1, 3]], after[0, [2, 1, 3]])
    torch.testing.assert_close(moved[0, 4], after[0, 4])


def test_xlnet_pair_joint_is_the_chain_rule_and_its_first_marginal_does_not_depend_on_the_pass():
    ours, _ = random_pair(2)
    ids = torch.randint(1, VOCAB, (2, 7), generator=torch.Generator().manual_seed(5))
    cands = [3, 8]
    joint = pair_log_probs_xlnet(ours, ids, None, 2, 4, cands)
    assert joint.shape == (2, 2, VOCAB)
    for ci, c in enumerate(cands):
        for w in (1, 11):
            filled = ids.clone()
            filled[:, 2], filled[:, 4] = c, w
            order = torch.tensor([0, 1, 3, 5, 6, 2, 4]).expand(2, 7)
            predict = torch.zeros(2, 7, dtype=torch.bool)
            predict[:, [2, 4]] = True
            want = log_prob_under_order(ours, filled, order, predict)
            torch.testing.assert_close(joint[:, ci, w], want, atol=1e-5, rtol=1e-5)
    # summing the second token out leaves log p(first = c), which then sums to at most 1 over c
    first = joint.logsumexp(-1)
    assert bool((first.exp().sum(-1) <= 1 + 1e-5).all())


def test_bert_pair_joint_is_the_product_of_its_two_masked_predictions():
    torch.manual_seed(0)
    bert = Bert(BertConfig(vocab_size=VOCAB, d_model=16, n_layers=1, n_heads=2, d_ff=32, max_len=16,
                           dropout=0.0)).eval()
    ids = torch.randint(5, VOCAB, (2, 6), generator=torch.Generator().manual_seed(6))
    joint = pair_log_probs_bert(bert, ids, None, 1, 3, [7, 9], mask_id=4)
    masked = ids.clone()
    masked[:, [1, 3]] = 4
    with torch.no_grad():
        logp = bert(masked, heads=("mlm",)).logits.log_softmax(-1)
    torch.testing.assert_close(joint[:, 1, 12], logp[:, 1, 9] + logp[:, 3, 12])
    torch.testing.assert_close(joint.logsumexp(-1), logp[:, 1, [7, 9]], atol=1e-5, rtol=1e-5)


def test_permutation_lm_loss_counts_its_targets_and_never_predicts_padding():
    torch.manual_seed(0)
    model = XLNet(XLNetConfig.tiny(vocab_size=VOCAB, pad_id=0))
    ids = torch.randint(1, VOCAB, (3, 12), generator=torch.Generator().manual_seed(7))
    ids[0, 8:] = 0
    loss_fn = permutation_lm_loss(k=4, generator=torch.Generator().manual_seed(8), pad_id=0)
    loss, n = loss_fn(model, (ids, torch.zeros_like(ids)))
    assert n == 8 // 4 + 12 // 4 + 12 // 4
    assert loss.dim() == 0 and loss.requires_grad and math.isfinite(float(loss.detach()))
    p = sample_permutation(ids, k=4, attention_mask=ids != 0, generator=torch.Generator().manual_seed(8))
    by_hand = model(ids, attention_mask=ids != 0, perm_mask=p.perm_mask, target_mapping=p.target_mapping,
                    targets=p.targets).loss  # no segments: the same numbers as one segment for all
    torch.testing.assert_close(loss, by_hand)


def test_permutation_lm_loss_never_predicts_the_special_ids():
    torch.manual_seed(0)
    model = XLNet(XLNetConfig.tiny(vocab_size=VOCAB, pad_id=0))
    ids = torch.randint(3, VOCAB, (4, 9), generator=torch.Generator().manual_seed(9))
    ids[:, 0], ids[:, 4], ids[:, -1] = 1, 2, 2  # [CLS] ... [SEP] ... [SEP]
    loss_fn = permutation_lm_loss(k=3, generator=torch.Generator().manual_seed(1), pad_id=0, special_ids=[1, 2])
    loss, n = loss_fn(model, (ids,))
    assert n == 4 * (6 // 3)  # 6 predictable tokens a row
    fixed = (ids == 1) | (ids == 2)
    p = sample_permutation(ids, k=3, attention_mask=ids != 0, generator=torch.Generator().manual_seed(1),
                           never_predict=fixed)
    assert not torch.isin(p.targets, torch.tensor([1, 2])).any()
    by_hand = model(ids, attention_mask=ids != 0, perm_mask=p.perm_mask, target_mapping=p.target_mapping,
                    targets=p.targets).loss
    torch.testing.assert_close(loss, by_hand)
    with pytest.raises(ValueError, match="special_ids must be token ids"):
        permutation_lm_loss(special_ids=["[CLS]"])


def test_permutation_lm_loss_in_span_mode_is_the_samplers_span_batch():
    torch.manual_seed(0)
    model = XLNet(XLNetConfig.tiny(vocab_size=VOCAB, pad_id=0))
    ids = torch.randint(3, VOCAB, (3, 24), generator=torch.Generator().manual_seed(7))
    ids[0, 16:] = 0
    ids[:, 0] = 1  # a special id
    loss_fn = permutation_lm_loss(k=4, generator=torch.Generator().manual_seed(8), pad_id=0, special_ids=[1],
                                  span=True, max_span=3)
    loss, n = loss_fn(model, (ids,))
    assert n == 15 // 4 + 23 // 4 + 23 // 4  # as many targets as in token mode
    p = sample_permutation(ids, k=4, attention_mask=ids != 0, generator=torch.Generator().manual_seed(8),
                           never_predict=ids == 1, span=True, max_span=3)
    token = sample_permutation(ids, k=4, attention_mask=ids != 0, generator=torch.Generator().manual_seed(8),
                               never_predict=ids == 1)
    assert not torch.equal(p.perm_mask, token.perm_mask)
    by_hand = model(ids, attention_mask=ids != 0, perm_mask=p.perm_mask, target_mapping=p.target_mapping,
                    targets=p.targets).loss
    torch.testing.assert_close(loss, by_hand)


def test_meta_device():
    order = torch.arange(6, device="meta").expand(2, 6)
    predict = torch.arange(6, device="meta").expand(2, 6) > 0
    perm_mask, target_mapping = order_inputs(order, predict)
    assert perm_mask.device.type == target_mapping.device.type == "meta"


@pytest.mark.parametrize("call, message", [
    (lambda m: order_inputs(torch.tensor([[0, 0, 1]]), torch.tensor([[True, False, True]])), "permutation"),
    (lambda m: order_inputs(torch.tensor([[0, 1, 2]]), torch.ones(1, 3)), "predict must be a bool"),
    (lambda m: order_inputs(torch.tensor([[0, 1, 2]]), torch.ones(1, 3, dtype=torch.bool)), "context position"),
    (lambda m: pair_log_probs_xlnet(m, torch.ones(1, 2, dtype=torch.long), None, 0, 1, [2]), "at least 3"),
    (lambda m: order_inputs(torch.tensor([0, 1, 2]), torch.ones(3, dtype=torch.bool)), "order must be"),
    (lambda m: log_prob_under_order(m, torch.ones(1, 4, dtype=torch.long), torch.arange(3)[None],
                                    torch.tensor([[False, True, True]])), "input_ids must have the shape"),
    (lambda m: log_prob_under_order(m, torch.ones(1, 3, dtype=torch.long), torch.arange(3)[None],
                                    torch.tensor([[False, True, True]]),
                                    attention_mask=torch.tensor([[True, True, False]])), "padding"),
    (lambda m: pair_log_probs_xlnet(m, torch.ones(1, 4, dtype=torch.long), None, 1, 1, [2]), "two different"),
    (lambda m: pair_log_probs_xlnet(m, torch.ones(1, 4, dtype=torch.long), None, 1, 5, [2]), "second must be"),
    (lambda m: pair_log_probs_xlnet(m, torch.ones(1, 4, dtype=torch.long), None, 0, 1, [VOCAB]), "candidates"),
    (lambda m: pair_log_probs_xlnet(torch.nn.Linear(2, 2), torch.ones(1, 4, dtype=torch.long), None, 0, 1, [2]),
     "must be an XLNet"),
    (lambda m: permutation_lm_loss(k=1), "k must be an int >= 2"),
    (lambda m: permutation_lm_loss(span=1), "span must be a bool"),
    (lambda m: permutation_lm_loss(span=True, max_span=0), "max_span must be an int >= 1"),
])
def test_bad_input_names_the_argument(call, message):
    model = XLNet(XLNetConfig.tiny(vocab_size=VOCAB))
    with pytest.raises((ValueError, TypeError), match=message):
        call(model)

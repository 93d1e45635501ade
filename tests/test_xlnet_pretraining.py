"""XLNet pretraining on a stream with memory (lmbook_utils.xlnet_pretraining)."""

import pytest
import torch

from lmbook_utils.repro import set_seed
from lmbook_utils.xlnet import XLNet, XLNetConfig
from lmbook_utils.xlnet_pretraining import (MemoryDenoisingLoss, MemoryPermutationLoss, hidden_word_log_probs,
                                           segment_streams)


def test_segments_continue_each_row_from_one_batch_to_the_next():
    stream = list(range(2 * 3 * 4 + 5))  # 2 rows of 3 segments of 4, and a tail of 5 that is dropped
    batches = segment_streams(stream, batch_size=2, seg_len=4)
    assert len(batches) == 3
    assert [bool(s) for _, s in batches] == [True, False, False]
    rows = torch.cat([b for b, _ in batches], dim=1)
    assert rows.tolist() == [list(range(0, 12)), list(range(12, 24))]


def test_bidirectional_data_reads_the_same_rows_backwards():
    batches = segment_streams(list(range(16)), batch_size=4, seg_len=4, bi_data=True)
    rows = torch.cat([b for b, _ in batches], dim=1)
    assert rows[:2].tolist() == [list(range(0, 8)), list(range(8, 16))]
    assert rows[2:].tolist() == [list(range(7, -1, -1)), list(range(15, 7, -1))]


@pytest.mark.parametrize("kwargs, word", [
    (dict(token_ids="abc", batch_size=1, seg_len=1), "token_ids"),
    (dict(token_ids=[1, 2], batch_size=0, seg_len=1), "batch_size"),
    (dict(token_ids=[1, 2], batch_size=1, seg_len=0), "seg_len"),
    (dict(token_ids=[1, 2, 3, 4], batch_size=3, seg_len=1, bi_data=True), "even batch_size"),
    (dict(token_ids=[1, 2, 3], batch_size=2, seg_len=2), "too few"),
])
def test_bad_stream_arguments_are_refused_by_name(kwargs, word):
    with pytest.raises(ValueError, match=word):
        segment_streams(**kwargs)


def _model(**changes):
    set_seed(0)
    return XLNet(XLNetConfig.tiny(vocab_size=13, mem_len=8, **changes))


def test_the_loss_reads_the_previous_segment_only_with_memory():
    batches = segment_streams([int(i) for i in torch.randint(2, 13, (2 * 3 * 6,), generator=torch.Generator().manual_seed(1))],
                              batch_size=2, seg_len=6)
    losses = {}
    for memory in (True, False):
        model = _model()
        loss_fn = MemoryPermutationLoss(k=3, generator=torch.Generator().manual_seed(0), memory=memory)
        losses[memory] = [float(loss_fn(model, b)[0].detach()) for b in batches]
        assert (loss_fn.mems is not None) == memory
    # the same orders are drawn (same generator), so the first segment, which has no memory, agrees
    assert losses[True][0] == pytest.approx(losses[False][0], abs=1e-6)
    assert all(abs(a - b) > 1e-6 for a, b in zip(losses[True][1:], losses[False][1:]))


def test_the_memory_is_forgotten_where_the_stream_starts_again():
    batches = segment_streams(list(range(2, 13)) * 4, batch_size=2, seg_len=5)
    model = _model()
    loss_fn = MemoryPermutationLoss(k=3, generator=torch.Generator())
    loss_fn(model, batches[1])
    assert loss_fn.mems is not None
    loss_fn.generator.manual_seed(0)
    after_restart = float(loss_fn(model, batches[0])[0].detach())  # starts=True: the memory of batches[1] is dropped
    fresh = MemoryPermutationLoss(k=3, generator=torch.Generator().manual_seed(0))
    assert after_restart == pytest.approx(float(fresh(model, batches[0])[0].detach()), abs=1e-6)
    stale = MemoryPermutationLoss(k=3, generator=torch.Generator())
    stale(model, batches[1])
    stale.generator.manual_seed(0)
    with_stale_memory = float(stale(model, (batches[0][0], torch.tensor(False)))[0].detach())
    assert abs(with_stale_memory - after_restart) > 1e-6  # so the check above could fail
    assert [m.requires_grad for m in loss_fn.mems] == [False] * len(loss_fn.mems)


def test_special_tokens_are_never_targets_and_targets_are_counted():
    ids = torch.tensor([[0, 5, 6, 7, 1, 8, 9, 10], [0, 11, 12, 5, 1, 6, 7, 8]])
    model = _model()
    loss_fn = MemoryPermutationLoss(k=2, generator=torch.Generator().manual_seed(3), special_ids=[0, 1])
    loss, n = loss_fn(model, (ids, torch.tensor(True)))
    assert n == 2 * (6 // 2)
    assert torch.isfinite(loss)


def test_bad_loss_arguments_are_refused_by_name():
    for kwargs, word in ((dict(k=1), "k must"), (dict(special_ids=["a"]), "special_ids"), (dict(memory=1), "memory")):
        with pytest.raises(ValueError, match=word):
            MemoryPermutationLoss(**kwargs)
    with pytest.raises(ValueError, match="batch must be"):
        MemoryPermutationLoss()(_model(), torch.zeros(2, 3, dtype=torch.long))


def test_hidden_word_without_memory_is_the_query_stream_with_the_rest_as_context():
    model = _model()
    ids = torch.tensor([[3, 4, 5, 6, 7], [8, 9, 10, 11, 12]])
    position = torch.tensor([2, 0])
    got = hidden_word_log_probs(model, ids, position)
    # by hand: one row at a time, perm_mask blocks the hidden position for everyone
    for r in range(2):
        perm = torch.zeros(1, 5, 5)
        perm[0, :, position[r]] = 1.0
        mapping = torch.zeros(1, 1, 5)
        mapping[0, 0, position[r]] = 1.0
        with torch.no_grad():
            want = model.eval()(ids[r:r + 1], perm_mask=perm, target_mapping=mapping).logits[0, 0].log_softmax(-1)
        torch.testing.assert_close(got[r], want, atol=1e-6, rtol=0)
    # the hidden token itself changes nothing
    changed = ids.clone()
    changed[0, 2], changed[1, 0] = 12, 3
    torch.testing.assert_close(hidden_word_log_probs(model, changed, position), got, atol=1e-6, rtol=0)


def test_hidden_word_reads_the_memory_and_padding_changes_nothing():
    model = _model()
    previous = torch.tensor([[3, 4, 5], [6, 7, 8]])
    ids = torch.tensor([[9, 10, 11, 0], [12, 3, 4, 5]])
    keep = torch.tensor([[1, 1, 1, 0], [1, 1, 1, 1]], dtype=torch.bool)
    position = torch.tensor([1, 2])
    with_memory = hidden_word_log_probs(model, ids, position, keep, previous=previous)
    alone = hidden_word_log_probs(model, ids, position, keep)
    assert (with_memory - alone).abs().max() > 1e-5  # an untrained model reads it a little
    short = hidden_word_log_probs(model, ids[:1, :3], position[:1], previous=previous[:1])
    torch.testing.assert_close(with_memory[:1], short, atol=1e-5, rtol=0)


def test_hidden_word_refuses_bad_input_by_name():
    model = _model()
    ids = torch.tensor([[3, 4, 5]])
    with pytest.raises(ValueError, match="position"):
        hidden_word_log_probs(model, ids, torch.tensor([3]))
    with pytest.raises(ValueError, match="padding"):
        hidden_word_log_probs(model, ids, torch.tensor([2]), torch.tensor([[1, 1, 0]]))
    with pytest.raises(ValueError, match="previous"):
        hidden_word_log_probs(model, ids, torch.tensor([0]), previous=torch.zeros(2, 2, dtype=torch.long))
    with pytest.raises(TypeError, match="XLNet"):
        hidden_word_log_probs(torch.nn.Linear(2, 2), ids, torch.tensor([0]))


def test_the_denoising_loss_masks_like_bert_and_reads_the_content_stream():
    from lmbook_utils.bert import mask_tokens
    ids = torch.randint(5, 13, (4, 9), generator=torch.Generator().manual_seed(2))
    model = _model()
    loss_fn = MemoryDenoisingLoss(mask_id=4, vocab_size=13, generator=torch.Generator().manual_seed(5),
                                  special_ids=[0, 1, 2, 3, 4])
    loss, n = loss_fn(model, (ids, torch.tensor(True)))
    inputs, targets = mask_tokens(ids, [0, 1, 2, 3, 4], 13, 4, generator=torch.Generator().manual_seed(5))
    want = model(inputs, targets=targets)
    assert n == int((targets != -100).sum()) > 0
    assert float(loss.detach()) == pytest.approx(float(want.loss.detach()), abs=1e-6)
    assert loss_fn.mems is not None
    with pytest.raises(ValueError, match="mask_id"):
        MemoryDenoisingLoss(mask_id=4, vocab_size=13, special_ids=[0, 1])


def test_hidden_word_at_a_mask_is_the_content_stream_there():
    model = _model()
    ids = torch.tensor([[3, 4, 5, 6, 7]])
    got = hidden_word_log_probs(model, ids, torch.tensor([2]), mask_id=1)
    masked = ids.clone()
    masked[0, 2] = 1
    with torch.no_grad():
        want = model.eval()(masked).logits[0, 2].log_softmax(-1)
    torch.testing.assert_close(got[0], want, atol=1e-6, rtol=0)

"""The heads shared by every encoder (heads.py): the adapters give each model's own last hidden
states, the sequence head reads the documented token, the heads equal the per-model heads of
chapters 05-08 given the same weights, the losses equal a hand computation, gradients reach
the encoder, bad input is named, and a few training steps lower the loss."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from lmbook_utils.bert import Bert, BertConfig, BertForQA, BertTokenClassifier
from lmbook_utils.electra import ElectraClassifier, ElectraConfig, ElectraDiscriminator, ElectraForQA
from lmbook_utils.gpt import GPT, GPTClassifier, GPTConfig
from lmbook_utils.heads import (SequenceClassifier, SpanExtractor, TokenClassifier, default_pooling, encode,
                                encoder_states, pool)
from lmbook_utils.xlnet import XLNet, XLNetConfig, XLNetTokenClassifier

torch.set_num_threads(2)

KINDS = ("bert", "electra", "xlnet", "gpt")
# Two rows, the first right-padded. Real ids are >= 1: BERT's and ELECTRA's pad_id is 0.
IDS = torch.tensor([[1, 5, 7, 2, 0, 0], [3, 4, 4, 9, 8, 2]])
KEEP = IDS != 0
LAST = torch.tensor([3, 5])  # each row's last real token
SEG = torch.tensor([[0, 0, 1, 1, 0, 0], [0, 0, 0, 1, 1, 1]])
EXACT = {"atol": 1e-6, "rtol": 1e-6}  # the same computation
CLOSE = {"atol": 1e-5, "rtol": 1e-5}  # the same function, other tensor shapes or attention kernels


def make(kind: str, seed: int = 0):
    """A tiny encoder of each kind (dropout 0 in every tiny preset), in eval mode."""
    torch.manual_seed(seed)
    model = {"bert": lambda: Bert(BertConfig.tiny()), "electra": lambda: ElectraDiscriminator(ElectraConfig.tiny()),
             "xlnet": lambda: XLNet(XLNetConfig.tiny()), "gpt": lambda: GPT(GPTConfig.tiny())}[kind]()
    return model.eval()


def own_states(kind: str, model, ids: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """The last hidden states as each model's own forward returns them."""
    if kind == "bert":
        return model(ids, attention_mask=keep, heads=()).last_hidden_state
    if kind == "electra":
        return model(ids, attention_mask=keep).last_hidden_state
    if kind == "xlnet":
        return model.encode(ids, keep).last_hidden_state
    return model(ids, attention_mask=keep).last_hidden_state


def token_embedding(kind: str, model) -> torch.Tensor:
    return {"bert": lambda: model.tok_emb.weight, "electra": lambda: model.body.embeddings.tok_emb.weight,
            "xlnet": lambda: model.word_embedding.weight, "gpt": lambda: model.wte.weight}[kind]()


# ---- the adapters ---------------------------------------------------------------------------
@pytest.mark.parametrize("kind", KINDS)
def test_encoder_states_are_the_models_last_hidden_states(kind):
    model = make(kind)
    with torch.no_grad():
        h = encoder_states(model, IDS, attention_mask=KEEP)
        want = own_states(kind, model, IDS, KEEP)
        enc = encode(model, IDS, attention_mask=KEEP, need_weights=True)
    assert h.shape == (2, 6, 16)
    torch.testing.assert_close(h, want, **EXACT)
    torch.testing.assert_close(enc.hidden, want, **EXACT)
    assert torch.equal(enc.keep, KEEP) and len(enc.attentions) == 2  # one per layer
    assert encode(model, IDS, attention_mask=KEEP).attentions is None


@pytest.mark.parametrize("kind", KINDS)
def test_without_a_mask_each_model_keeps_its_own_default(kind):
    # BERT and ELECTRA derive the mask from pad_id; XLNet and GPT take every token as real
    want = KEEP if kind in ("bert", "electra") else torch.ones_like(KEEP)
    assert torch.equal(encode(make(kind), IDS).keep, want)


def test_default_pooling_per_model():
    assert {kind: default_pooling(make(kind)) for kind in KINDS} == {
        "bert": "first", "electra": "first", "xlnet": "last", "gpt": "last"}


# ---- which token the sequence head reads ----------------------------------------------------
@pytest.mark.parametrize("kind", KINDS)
def test_auto_pooling_reads_the_documented_token(kind):
    model = make(kind)
    clf = SequenceClassifier(model, 3, dropout=0.0).eval()
    with torch.no_grad():
        out = clf(IDS, attention_mask=KEEP)
        h = own_states(kind, model, IDS, KEEP)
        want = h[:, 0] if kind in ("bert", "electra") else h[torch.arange(2), LAST]  # [CLS]; the last real token
        head_of_want = clf.out_proj(want)
    assert clf.pooling == ("first" if kind in ("bert", "electra") else "last")
    torch.testing.assert_close(out.pooled, want, **EXACT)
    torch.testing.assert_close(out.logits, head_of_want, **EXACT)
    assert out.logits.shape == (2, 3) and out.loss is None


@pytest.mark.parametrize("kind", KINDS)
def test_padding_tokens_do_not_change_the_sequence_logits(kind):
    # the tokens after the last real one are masked: other ids there change nothing
    clf = SequenceClassifier(make(kind), 3, dropout=0.0).eval()
    changed = IDS.masked_fill(~KEEP, 6)
    with torch.no_grad():
        torch.testing.assert_close(clf(changed, attention_mask=KEEP).logits, clf(IDS, attention_mask=KEEP).logits,
                                   **EXACT)
        moved = IDS.clone()
        moved[0, 3] = 6  # the last real token of row 0 does count
        assert not torch.allclose(clf(moved, attention_mask=KEEP).logits[0], clf(IDS, attention_mask=KEEP).logits[0])


@pytest.mark.parametrize("kind", ["xlnet", "gpt"])
def test_last_pooling_gives_the_row_alone_with_padding_on_either_side(kind):
    # XLNet's positions are relative and GPT's count real tokens only, so a padded row, on the
    # right or on the left (XLNet's tokenizer pads on the left), is the row alone
    clf = SequenceClassifier(make(kind), 3, dropout=0.0).eval()
    left = torch.tensor([[0, 0, 1, 5, 7, 2]])
    with torch.no_grad():
        alone = clf(IDS[:1, :4]).logits
        torch.testing.assert_close(clf(IDS[:1], attention_mask=KEEP[:1]).logits, alone, **CLOSE)
        torch.testing.assert_close(clf(left, attention_mask=left != 0).logits, alone, **CLOSE)


def test_first_pooling_refuses_a_padded_first_position():
    clf = SequenceClassifier(make("bert"), 3)
    with pytest.raises(ValueError, match=r"attention_mask is False at position 0 in rows \[0\]"):
        clf(torch.tensor([[0, 0, 1, 5, 7, 2], [3, 4, 4, 9, 8, 2]]))


@pytest.mark.parametrize("kind", KINDS)
def test_mean_pooling_averages_the_real_tokens(kind):
    model = make(kind)
    clf = SequenceClassifier(model, 3, pooling="mean").eval()
    with torch.no_grad():
        out = clf(IDS, attention_mask=KEEP)
        h = own_states(kind, model, IDS, KEEP)
    torch.testing.assert_close(out.pooled, torch.stack([h[0, :4].mean(0), h[1].mean(0)]), **EXACT)


def test_pool_by_hand():
    h = torch.arange(2 * 3 * 2, dtype=torch.float32).reshape(2, 3, 2)
    keep = torch.tensor([[True, True, False], [False, True, True]])
    torch.testing.assert_close(pool(h, keep, "last"), torch.stack([h[0, 1], h[1, 2]]))
    torch.testing.assert_close(pool(h, keep, "mean"), torch.stack([h[0, :2].mean(0), h[1, 1:].mean(0)]))
    torch.testing.assert_close(pool(h, torch.ones_like(keep), "first"), h[:, 0])
    with pytest.raises(ValueError, match=r"attention_mask is False at position 0 in rows \[1\]"):
        pool(h, keep, "first")
    with pytest.raises(ValueError, match="pooling must be one of"):
        pool(h, keep, "auto")  # a model's choice, resolved by the head


# ---- the same function as the heads of chapters 05-08 ---------------------------------------
def _same_span_head(theirs, ours):
    """Copy `theirs`' start/end layer (with a random bias, which a zero bias would hide if left
    uncopied) into `ours` and compare both logits and the loss."""
    with torch.no_grad():
        theirs.qa_outputs.bias.normal_()
    ours.qa_outputs.load_state_dict(theirs.qa_outputs.state_dict())
    s, e = torch.tensor([1, 2]), torch.tensor([3, 4])
    with torch.no_grad():
        want, got = theirs(IDS, SEG, KEEP, s, e), ours(IDS, SEG, KEEP, s, e)
    for name in ("start_logits", "end_logits", "loss"):
        torch.testing.assert_close(getattr(got, name), getattr(want, name), **EXACT)


def test_span_extractor_equals_bert_for_qa():
    bert = make("bert")
    _same_span_head(BertForQA(bert).eval(), SpanExtractor(bert).eval())


def test_span_extractor_equals_electra_for_qa():
    disc = make("electra")
    ours = SpanExtractor(disc).eval()
    assert ours.encoder is disc.body  # the replaced-token head is not part of the reader
    _same_span_head(ElectraForQA(disc).eval(), ours)


def _tags(n_labels: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(5)
    return torch.randint(0, n_labels, IDS.shape, generator=g).masked_fill(~KEEP, -100)


def _same_token_head(theirs, ours, run_theirs):
    """Copy `theirs`' linear layer (with a random bias) into `ours` and compare logits and loss."""
    with torch.no_grad():
        theirs.classifier.bias.normal_()
    ours.classifier.load_state_dict(theirs.classifier.state_dict())
    tags = _tags(5)
    with torch.no_grad():
        want, got = run_theirs(theirs, tags), ours(IDS, SEG, KEEP, targets=tags)
    torch.testing.assert_close(got.logits, want.logits, **EXACT)
    torch.testing.assert_close(got.loss, want.loss, **EXACT)


def test_token_classifier_equals_bert_token_classifier():
    # BertTokenClassifier is dropout (the config's) + linear: the same architecture
    bert = make("bert")
    _same_token_head(BertTokenClassifier(bert, 5).eval(), TokenClassifier(bert, 5).eval(),
                     lambda m, tags: m(IDS, SEG, KEEP, targets=tags))


def test_token_classifier_equals_xlnet_token_classifier():
    # XLNetTokenClassifier has no dropout of its own: ours with dropout=0
    xlnet = make("xlnet")
    _same_token_head(XLNetTokenClassifier(xlnet, 5).eval(), TokenClassifier(xlnet, 5, dropout=0.0).eval(),
                     lambda m, tags: m(IDS, attention_mask=KEEP, token_type_ids=SEG, targets=tags))


def test_dense_tanh_head_equals_bert_classification_head():
    bert = make("bert")
    with torch.no_grad():
        bert.pooler.bias.normal_()
        bert.cls_head.bias.normal_()
    ours = SequenceClassifier(bert, bert.config.n_labels, pooling="first", head="dense_tanh", dropout=0.0).eval()
    ours.dense.load_state_dict(bert.pooler.state_dict())
    ours.out_proj.load_state_dict(bert.cls_head.state_dict())
    labels = torch.tensor([1, 0])
    with torch.no_grad():
        want = bert(IDS, SEG, KEEP, labels=labels, heads=("cls",))
        got = ours(IDS, SEG, KEEP, labels=labels)
        pooler = torch.tanh(ours.dense(got.pooled))
    torch.testing.assert_close(got.logits, want.class_logits, **EXACT)
    torch.testing.assert_close(got.loss, want.loss, **EXACT)
    torch.testing.assert_close(pooler, want.pooler_output, **EXACT)


def test_dense_gelu_head_equals_electra_classifier():
    disc = make("electra")
    theirs = ElectraClassifier(disc, 3).eval()
    with torch.no_grad():
        theirs.dense.bias.normal_()
        theirs.out_proj.bias.normal_()
    ours = SequenceClassifier(disc, 3, head="dense_gelu", dropout=0.0).eval()
    ours.dense.load_state_dict(theirs.dense.state_dict())
    ours.out_proj.load_state_dict(theirs.out_proj.state_dict())
    labels = torch.tensor([2, 0])
    with torch.no_grad():
        want, got = theirs(IDS, SEG, KEEP, labels=labels), ours(IDS, SEG, KEEP, labels=labels)
    torch.testing.assert_close(got.logits, want.logits, **EXACT)
    torch.testing.assert_close(got.loss, want.loss, **EXACT)


def test_linear_head_equals_gpt_classifier():
    gpt = make("gpt")
    theirs = GPTClassifier(gpt, 3).eval()  # lm_weight 0: the classification loss only
    with torch.no_grad():
        theirs.head.bias.normal_()
    ours = SequenceClassifier(gpt, 3, dropout=0.0).eval()
    ours.out_proj.load_state_dict(theirs.head.state_dict())
    labels = torch.tensor([2, 0])
    full = IDS.masked_fill(~KEEP, 6)
    with torch.no_grad():
        want, got = theirs(full, labels), ours(full, labels=labels)
        torch.testing.assert_close(got.logits, want.logits, **EXACT)
        torch.testing.assert_close(got.loss, want.loss, **EXACT)
        # right padding: GPTClassifier runs without a mask, we pass it to the GPT (another kernel)
        want, got = theirs(IDS, labels, KEEP), ours(IDS, attention_mask=KEEP, labels=labels)
        torch.testing.assert_close(got.logits, want.logits, **CLOSE)


# ---- the losses -----------------------------------------------------------------------------
@pytest.mark.parametrize("kind", KINDS)
def test_losses_equal_a_hand_computation(kind):
    model = make(kind)
    labels = torch.tensor([2, 0])
    tags = torch.tensor([[0, 3, 1, 2, -100, -100], [-100, 1, 1, 0, 3, 2]])  # -100 at a real token too
    s, e = torch.tensor([1, 0]), torch.tensor([3, 5])
    with torch.no_grad():
        seq = SequenceClassifier(model, 3).eval()(IDS, attention_mask=KEEP, labels=labels)
        tok = TokenClassifier(model, 4).eval()(IDS, attention_mask=KEEP, targets=tags)
        span = SpanExtractor(model).eval()(IDS, attention_mask=KEEP, start_positions=s, end_positions=e)
    rows = torch.arange(2)
    torch.testing.assert_close(seq.loss, -seq.logits.log_softmax(-1)[rows, labels].mean())
    labeled = tags != -100
    by_hand = -tok.logits.log_softmax(-1)[labeled].gather(1, tags[labeled][:, None]).mean()
    torch.testing.assert_close(tok.loss, by_hand)
    torch.testing.assert_close(tok.loss, F.cross_entropy(tok.logits.flatten(0, 1), tags.flatten(), ignore_index=-100))
    start, end = span.start_logits.log_softmax(-1)[rows, s], span.end_logits.log_softmax(-1)[rows, e]
    torch.testing.assert_close(span.loss, -(start.mean() + end.mean()) / 2)
    assert span.start_logits.shape == span.end_logits.shape == (2, 6) and tok.logits.shape == (2, 6, 4)


@pytest.mark.parametrize("kind", ["bert", "xlnet"])
def test_ignored_targets_do_not_count(kind):
    # a row whose targets are all -100 adds nothing: the loss is the other row's alone
    tc = TokenClassifier(make(kind), 4).eval()
    tags = torch.tensor([[0, 3, 1, 2, -100, -100], [2, 1, 1, 0, 3, 2]])
    with torch.no_grad():
        both = tc(IDS, attention_mask=KEEP, targets=tags.masked_fill(torch.tensor([[True], [False]]), -100)).loss
        alone = tc(IDS[1:], attention_mask=KEEP[1:], targets=tags[1:]).loss
    torch.testing.assert_close(both, alone, **CLOSE)


@pytest.mark.parametrize("kind", KINDS)
def test_gradients_reach_the_encoder(kind):
    labels, tags = torch.tensor([2, 0]), _tags(4)
    s, e = torch.tensor([1, 0]), torch.tensor([3, 5])
    calls = {SequenceClassifier: lambda m: m(IDS, attention_mask=KEEP, labels=labels),
             TokenClassifier: lambda m: m(IDS, attention_mask=KEEP, targets=tags),
             SpanExtractor: lambda m: m(IDS, attention_mask=KEEP, start_positions=s, end_positions=e)}
    for cls, call in calls.items():
        model = make(kind)
        head = (cls(model) if cls is SpanExtractor else cls(model, 4 if cls is TokenClassifier else 3)).train()
        call(head).loss.backward()
        grad = token_embedding(kind, model).grad
        assert grad is not None and float(grad.abs().sum()) > 0, (kind, cls.__name__)
        # the head's weights learn too (not the span head's biases: a constant added to every
        # position's start logit leaves the softmax over positions unchanged, its gradient is 0)
        for name, p in head.named_parameters():
            if not name.startswith("encoder.") and name.endswith("weight"):
                assert p.grad is not None and float(p.grad.abs().sum()) > 0, (kind, cls.__name__, name)


# ---- bad input ------------------------------------------------------------------------------
def test_bad_arguments_are_named():
    bert = make("bert")
    for bad in (0, -1, True, 2.0):
        with pytest.raises(ValueError, match="n_labels must be an int >= 1"):
            SequenceClassifier(bert, bad)
        with pytest.raises(ValueError, match="n_labels must be an int >= 1"):
            TokenClassifier(bert, bad)
    with pytest.raises(ValueError, match="pooling must be one of"):
        SequenceClassifier(bert, 2, pooling="max")
    with pytest.raises(ValueError, match="head must be one of"):
        SequenceClassifier(bert, 2, head="mlp")
    with pytest.raises(ValueError, match=r"dropout must be a number in \[0, 1\)"):
        TokenClassifier(bert, 2, dropout=1.0)
    for not_an_encoder in (torch.nn.Linear(2, 2), BertForQA(bert)):
        for build in (lambda m: SequenceClassifier(m, 2), lambda m: TokenClassifier(m, 2), SpanExtractor,
                      lambda m: encoder_states(m, IDS)):
            with pytest.raises(TypeError, match="encoder must be a bert.Bert"):
                build(not_an_encoder)


def test_bad_inputs_are_named():
    bert, xlnet, gpt = make("bert"), make("xlnet"), make("gpt")
    clf = SequenceClassifier(bert, 3)
    with pytest.raises(ValueError, match=r"labels must be an integer tensor of shape \(2,\)"):
        clf(IDS, labels=torch.tensor([[1], [2]]))
    with pytest.raises(ValueError, match=r"labels must be an integer tensor of shape \(2,\)"):
        clf(IDS, labels=torch.tensor([1.0, 2.0]))
    with pytest.raises(ValueError, match=r"labels must be class ids in \[0, 3\)"):
        clf(IDS, labels=torch.tensor([0, 3]))
    tc = TokenClassifier(bert, 4)
    with pytest.raises(ValueError, match=r"targets must be an integer tensor of shape \(2, 6\)"):
        tc(IDS, targets=torch.zeros(2, 5, dtype=torch.long))
    with pytest.raises(ValueError, match=r"targets must be ids in \[0, 4\) or -100"):
        tc(IDS, targets=torch.full((2, 6), 4))
    with pytest.raises(ValueError, match="targets mark no labeled position"):
        tc(IDS, targets=torch.full((2, 6), -100))
    se = SpanExtractor(bert)
    with pytest.raises(ValueError, match="outside the input"):
        se(IDS, start_positions=torch.tensor([0, 6]), end_positions=torch.tensor([1, 6]))
    with pytest.raises(ValueError, match="give both start_positions and end_positions"):
        se(IDS, start_positions=torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="starts or ends on padding"):
        se(IDS, start_positions=torch.tensor([1, 0]), end_positions=torch.tensor([4, 5]))
    with pytest.raises(ValueError, match="end_positions must be >= start_positions"):
        se(IDS, start_positions=torch.tensor([2, 0]), end_positions=torch.tensor([1, 5]))
    with pytest.raises(ValueError, match="segment_ids must be None for a GPT"):
        encoder_states(gpt, IDS, segment_ids=torch.zeros_like(IDS))
    with pytest.raises(ValueError, match=r"attention_mask has no real token in rows \[0\]"):
        SequenceClassifier(xlnet, 2)(IDS, attention_mask=torch.tensor([[False] * 6, [True] * 6]))
    with pytest.raises(ValueError, match=r"attention_mask must be a bool tensor of shape \(2, 6\)"):
        encoder_states(xlnet, IDS, attention_mask=torch.ones(2, 5, dtype=torch.bool))
    with pytest.raises(ValueError, match="input_ids must be a"):
        encoder_states(gpt, IDS.float())
    with pytest.raises(ValueError, match=r"input_ids holds ids outside \[0, 11\)"):
        encoder_states(xlnet, IDS + 10)


# ---- training -------------------------------------------------------------------------------
def _train(head, batch: dict, steps: int = 20) -> tuple[float, float]:
    """(loss before, loss after) `steps` AdamW steps on one batch, measured in eval mode."""
    opt = torch.optim.AdamW(head.parameters(), lr=1e-2)
    with torch.no_grad():
        before = float(head.eval()(**batch).loss)
    head.train()
    for _ in range(steps):
        loss = head(**batch).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        return before, float(head.eval()(**batch).loss)


@pytest.mark.parametrize("kind", KINDS)
def test_a_few_steps_learn_a_separable_task(kind):
    # every row repeats one token and its class is that token's parity: separable from any
    # position, so any pooling can learn it
    ids = torch.tensor([[a] * 5 for a in (1, 2, 3, 4, 1, 2, 3, 4)])
    before, after = _train(SequenceClassifier(make(kind), 2, dropout=0.0), {"input_ids": ids, "labels": ids[:, 0] % 2})
    assert after < 0.5 * before, (before, after)
    # tagging: each token's tag is its parity
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(1, 5, (8, 6), generator=g)
    before, after = _train(TokenClassifier(make(kind), 2, dropout=0.0), {"input_ids": ids, "targets": ids % 2})
    assert after < 0.7 * before, (before, after)

"""BERT: parity with Hugging Face transformers, the 80/10/10 masking rule, export, bad input."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from lmbook_utils.repro import set_seed
from lmbook_utils.tokenizers import WordPieceTokenizer
from lmbook_utils.bert import (Bert, BertConfig, from_hf_state_dict, hf_config, mask_tokens, save_pretrained,
                               to_hf_state_dict)

torch.set_num_threads(2)
transformers = pytest.importorskip("transformers")


def hf_model(cfg: BertConfig):
    hf_cfg = transformers.BertConfig(
        vocab_size=cfg.vocab_size, hidden_size=cfg.d_model, num_hidden_layers=cfg.n_layers,
        num_attention_heads=cfg.n_heads, intermediate_size=cfg.d_ff, max_position_embeddings=cfg.max_len,
        type_vocab_size=cfg.type_vocab_size, hidden_act="gelu", layer_norm_eps=cfg.eps,
        hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, pad_token_id=cfg.pad_id)
    return transformers.BertForPreTraining(hf_cfg).eval()


def batch(cfg: BertConfig, seed: int, b: int = 3, t: int = 9):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(1, cfg.vocab_size, (b, t), generator=g)
    seg = (torch.arange(t)[None, :] >= torch.randint(1, t, (b, 1), generator=g)).long()
    keep = torch.ones(b, t, dtype=torch.bool)
    keep[0, t - 2:] = False  # padding in the first example
    ids[~keep] = cfg.pad_id
    return ids, seg, keep


@settings(max_examples=6, deadline=None)
@given(seed=st.integers(0, 1000), d_model=st.sampled_from([16, 32]), n_heads=st.sampled_from([1, 2, 4]),
       n_layers=st.integers(1, 3), vocab=st.integers(20, 60))
def test_matches_hf_bert_for_pretraining(seed, d_model, n_heads, n_layers, vocab):
    torch.manual_seed(seed)
    cfg = BertConfig(vocab_size=vocab, d_model=d_model, n_layers=n_layers, n_heads=n_heads,
                     d_ff=2 * d_model, max_len=16, dropout=0.0)
    theirs = hf_model(cfg)
    ours = Bert(cfg).eval()
    from_hf_state_dict(ours, theirs.state_dict())
    ids, seg, keep = batch(cfg, seed)
    with torch.no_grad():
        want = theirs(input_ids=ids, token_type_ids=seg, attention_mask=keep.long(), output_hidden_states=True)
        got = ours(ids, seg, keep)
    torch.testing.assert_close(got.last_hidden_state, want.hidden_states[-1], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(got.logits, want.prediction_logits, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(got.nsp_logits, want.seq_relationship_logits, atol=1e-5, rtol=1e-5)


def test_export_loads_in_transformers_with_the_same_logits(tmp_path):
    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=30, d_model=16, n_layers=2, n_heads=2, d_ff=32, max_len=12, dropout=0.0)
    ours = Bert(cfg).eval()
    tokenizer = WordPieceTokenizer.train(["w0 w1 w2 w3 w4 w5 w6 w7 w8 w9 w10 w11 w12 w13 w14 w15 w16 w17 w18 w19 "
                                          "w20 w21 w22 w23 w24"] * 2, vocab_size=30)
    cfg = BertConfig(**{**cfg.__dict__, "vocab_size": tokenizer.vocab_size})
    ours = Bert(cfg).eval()
    save_pretrained(ours, tmp_path / "bert", tokenizer=tokenizer)
    loaded = transformers.BertForPreTraining.from_pretrained(tmp_path / "bert").eval()
    tok = transformers.AutoTokenizer.from_pretrained(str(tmp_path / "bert"))
    assert tok("w3 [MASK] w12")["input_ids"] == tokenizer.encode_pair("w3 [MASK] w12")[0]
    ids, seg, keep = batch(cfg, 1)
    with torch.no_grad():
        want = loaded(input_ids=ids, token_type_ids=seg, attention_mask=keep.long())
        got = ours(ids, seg, keep)
    torch.testing.assert_close(got.logits, want.prediction_logits, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(got.nsp_logits, want.seq_relationship_logits, atol=1e-5, rtol=1e-5)
    # and back: the exported weights are ours
    again = Bert(cfg).eval()
    from_hf_state_dict(again, loaded.state_dict())
    for k, v in to_hf_state_dict(ours).items():
        torch.testing.assert_close(to_hf_state_dict(again)[k], v)


def test_segments_are_told_apart_the_summed_ids_pitfall_is_not():
    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=20, d_model=16, n_layers=1, n_heads=2, d_ff=32, max_len=8, dropout=0.0)
    model = Bert(cfg).eval()
    ids = torch.tensor([[5, 6, 7, 8]])
    a = model(ids, torch.tensor([[0, 0, 1, 1]])).last_hidden_state
    b = model(ids, torch.tensor([[0, 0, 0, 0]])).last_hidden_state
    assert not torch.allclose(a, b)  # the segment changes the representation
    # the pitfall: embedding(input_ids + segment_ids) makes token 6 in segment 1 = token 7 in segment 0
    pit = model.tok_emb(ids + torch.tensor([[0, 1, 0, 0]]))
    assert torch.equal(pit[0, 1], model.tok_emb(torch.tensor(7)))


def test_masking_rule_proportions_specials_and_determinism():
    special = [0, 1, 2, 3, 4]  # pad, unk, cls, sep, mask
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(5, 100, (400, 50), generator=g)
    ids[:, 0], ids[:, 25], ids[:, -5:] = 2, 3, 0
    inputs, labels = mask_tokens(ids, special, 100, mask_id=4, generator=torch.Generator().manual_seed(1))
    chosen = labels != -100
    normal = ~torch.isin(ids, torch.tensor(special))
    assert not chosen[~normal].any()  # never a special token
    assert torch.equal(labels[chosen], ids[chosen])
    rate = chosen.sum() / normal.sum()
    assert abs(float(rate) - 0.15) < 0.01
    masked = (inputs == 4) & chosen
    kept = (inputs == ids) & chosen
    randomized = chosen & ~masked & ~kept
    n = chosen.sum().float()
    assert abs(float(masked.sum() / n) - 0.8) < 0.02
    assert abs(float(randomized.sum() / n) - 0.1) < 0.02  # a random token can equal the original: ~0.1
    assert abs(float(kept.sum() / n) - 0.1) < 0.02
    assert not torch.isin(inputs[randomized], torch.tensor(special)).any()
    assert torch.equal(inputs[~chosen], ids[~chosen])
    again = mask_tokens(ids, special, 100, mask_id=4, generator=torch.Generator().manual_seed(1))
    assert torch.equal(again[0], inputs) and torch.equal(again[1], labels)


def test_losses_add_up():
    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=20, d_model=16, n_layers=1, n_heads=2, d_ff=32, max_len=8, dropout=0.0)
    model = Bert(cfg).eval()
    ids = torch.randint(5, 20, (2, 6))
    mlm = torch.full_like(ids, -100)
    mlm[:, 2] = ids[:, 2]
    nsp = torch.tensor([0, 1])
    out = model(ids, targets=mlm, nsp_labels=nsp)
    by_hand = (torch.nn.functional.cross_entropy(out.logits[:, 2], ids[:, 2])
               + torch.nn.functional.cross_entropy(out.nsp_logits, nsp))
    torch.testing.assert_close(out.loss, by_hand)


def test_bad_input_is_named():
    cfg = BertConfig(vocab_size=20, d_model=16, n_layers=1, n_heads=2, d_ff=32, max_len=8)
    model = Bert(cfg)
    with pytest.raises(ValueError, match="max_len=8"):
        model(torch.ones(1, 9, dtype=torch.long))
    with pytest.raises(ValueError, match="segment_ids must have the shape"):
        model(torch.ones(2, 4, dtype=torch.long), torch.zeros(2, 3, dtype=torch.long))
    with pytest.raises(ValueError, match=r"segment_ids must be in \[0, 2\)"):
        model(torch.ones(1, 4, dtype=torch.long), torch.tensor([[0, 1, 2, 0]]))
    with pytest.raises(ValueError, match=r"targets must be an integer tensor of shape \(1, 4\)"):
        model(torch.ones(1, 4, dtype=torch.long), targets=torch.ones(1, 3, dtype=torch.long))
    with pytest.raises(ValueError, match=r"nsp_labels must be an integer tensor of shape \(2,\)"):
        model(torch.ones(2, 4, dtype=torch.long), nsp_labels=torch.ones(2, 1, dtype=torch.long))
    with pytest.raises(ValueError, match="input_ids holds ids outside"):
        model(torch.tensor([[1, 25]]))
    with pytest.raises(ValueError, match=r"BertConfig.d_model \(10\) must be divisible by n_heads \(3\)"):
        BertConfig(vocab_size=20, d_model=10, n_heads=3)
    with pytest.raises(ValueError, match="BertConfig.d_ff must be an int >= 1, got 0"):
        BertConfig(vocab_size=20, d_ff=0)
    with pytest.raises(ValueError, match="BertConfig.n_layers must be an int >= 1, got True"):
        BertConfig(vocab_size=20, n_layers=True)
    with pytest.raises(ValueError, match="prob"):
        mask_tokens(torch.ones(2, 2, dtype=torch.long), [0, 4], 10, 4, prob=0.0)
    with pytest.raises(ValueError, match="mask_id"):
        mask_tokens(torch.ones(2, 2, dtype=torch.long), [0], 10, 4)


def test_dropout_sits_where_hugging_face_puts_it():
    # Same places, same rate: embeddings, attention weights, attention output, feed-forward
    # output; none between the two feed-forward layers (HF's BertIntermediate has none).
    import transformers
    from torch import nn

    cfg = BertConfig(vocab_size=50, d_model=16, n_layers=1, n_heads=2, d_ff=32, dropout=0.1)
    ours = Bert(cfg)
    hf = transformers.BertForPreTraining(transformers.BertConfig(**{
        k: v for k, v in hf_config(cfg).items() if k not in ("model_type", "architectures")}))

    def rates(module):
        return sorted(m.p for m in module.modules() if isinstance(m, nn.Dropout) and m.p > 0)

    ours_layer = rates(ours.encoder.layers[0]) + ([ours.encoder.layers[0].self_attn.dropout]
                                                  if ours.encoder.layers[0].self_attn.dropout > 0 else [])
    assert sorted(ours_layer) == rates(hf.bert.encoder.layer[0]) == [0.1, 0.1, 0.1]
    assert ours.encoder.layers[0].ff.dropout.p == 0.0


def test_exported_folder_runs_in_a_fill_mask_pipeline(tmp_path):
    from lmbook_utils.train import TrainConfig, train

    tokenizer = WordPieceTokenizer.train(["the cat sat on the mat .", "a dog ran to the park ."], vocab_size=60,
                                         min_frequency=1)
    ids, seg = tokenizer.encode_batch(["the cat sat on the mat ."] * 8)
    where = 3  # "sat": [CLS] the cat sat ...
    masked = ids.clone()
    masked[:, where] = tokenizer.mask_id
    targets = torch.full_like(ids, -100)
    targets[:, where] = ids[:, where]
    set_seed(0)
    model = Bert(BertConfig.tiny(vocab_size=tokenizer.vocab_size, max_len=16))
    train(model, [(masked, seg, None, targets)], TrainConfig(max_steps=40, lr=1e-2, warmup_steps=0, eval_every=40),
          progress=False)
    with torch.no_grad():
        ours = model.eval()(masked[:1], seg[:1]).logits[0, where].softmax(-1)
    assert tokenizer.id_to_token(int(ours.argmax())) == "sat"  # it learned
    save_pretrained(model, tmp_path / "bert", tokenizer=tokenizer)
    fill = transformers.pipeline("fill-mask", model=str(tmp_path / "bert"), device="cpu")
    best = fill("the cat [MASK] on the mat .", top_k=3)
    assert [b["token_str"] for b in best] == [tokenizer.id_to_token(int(i)) for i in ours.topk(3).indices]
    torch.testing.assert_close(torch.tensor([b["score"] for b in best]), ours.topk(3).values, atol=1e-5, rtol=1e-5)


def test_config_preset():
    model = Bert(BertConfig.tiny())
    assert model.config.d_model == 16 and sum(p.numel() for p in model.parameters()) < 20_000


def test_token_classifier_matches_hf_bert_for_token_classification():
    from lmbook_utils.bert import BertTokenClassifier, token_classifier_from_hf_state_dict

    cfg = BertConfig(vocab_size=31, d_model=16, n_layers=2, n_heads=2, d_ff=32, max_len=16, dropout=0.0)
    torch.manual_seed(3)
    theirs = transformers.BertForTokenClassification(transformers.BertConfig(
        vocab_size=31, hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=32,
        max_position_embeddings=16, hidden_act="gelu", layer_norm_eps=cfg.eps, hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0, pad_token_id=0, num_labels=5)).eval()
    with torch.no_grad():  # a random head: the default zero bias would hide a bias left unloaded
        theirs.classifier.bias.normal_()
    ours = BertTokenClassifier(Bert(cfg), n_labels=5).eval()
    token_classifier_from_hf_state_dict(ours, theirs.state_dict())
    ids, seg, keep = batch(cfg, 4)
    labels = torch.randint(0, 5, ids.shape, generator=torch.Generator().manual_seed(5)).masked_fill(~keep, -100)
    with torch.no_grad():
        want = theirs(input_ids=ids, token_type_ids=seg, attention_mask=keep.long(), labels=labels)
        got = ours(ids, seg, keep, targets=labels)
    torch.testing.assert_close(got.logits, want.logits, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(got.loss, want.loss, atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="n_labels must be"):
        BertTokenClassifier(Bert(cfg), n_labels=0)
    with pytest.raises(TypeError, match="bert must be a Bert"):
        BertTokenClassifier(torch.nn.Linear(2, 2), n_labels=3)
    with pytest.raises(ValueError, match="n_labels differ"):
        token_classifier_from_hf_state_dict(BertTokenClassifier(Bert(cfg), n_labels=4), theirs.state_dict())
    with pytest.raises(ValueError, match="lacks"):
        token_classifier_from_hf_state_dict(ours, {"classifier.weight": theirs.classifier.weight})


def test_qa_head_matches_hf_bert_for_question_answering():
    from lmbook_utils.bert import BertForQA, qa_from_hf_state_dict

    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=40, d_model=16, n_layers=2, n_heads=2, d_ff=32, max_len=16, dropout=0.0)
    hf_cfg = transformers.BertConfig(
        vocab_size=40, hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=32,
        max_position_embeddings=16, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
        attn_implementation="eager")
    theirs = transformers.BertForQuestionAnswering(hf_cfg).eval()
    ours = BertForQA(Bert(cfg)).eval()
    qa_from_hf_state_dict(ours, theirs.state_dict())
    ids, seg, keep = batch(cfg, 4)
    s, e = torch.tensor([1, 2, 0]), torch.tensor([3, 2, 4])
    want = theirs(input_ids=ids, token_type_ids=seg, attention_mask=keep.long(), start_positions=s, end_positions=e)
    got = ours(ids, seg, keep, s, e)
    torch.testing.assert_close(got.start_logits, want.start_logits, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(got.end_logits, want.end_logits, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(got.loss, want.loss, atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="outside the input"):
        ours(ids, seg, keep, torch.tensor([0, 1, 2]), torch.tensor([1, 2, 9]))
    with pytest.raises(TypeError, match="bert must be a Bert"):
        BertForQA(cfg)

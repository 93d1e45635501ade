"""ELECTRA: parity with Hugging Face's four ELECTRA classes, export, the joint objective's rules,
the MLM ablations (Replace MLM, All-Tokens MLM), the FLOP counts against torch's own counter,
bad input."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from lmbook_utils.bert import Bert, BertConfig, mask_tokens
from lmbook_utils.electra import (LAMBDA, ElectraClassifier, ElectraConfig, ElectraDiscriminator, ElectraForQA,
                                  ElectraGenerator, ElectraPretraining, ReplacedMLMPretraining, gumbel_sample)
from lmbook_utils.electra_hf import from_hf_state_dict, save_pretrained, to_hf_state_dict
from lmbook_utils.flops import bert_step_flops, electra_step_flops, encoder_forward_flops, replaced_mlm_step_flops
from lmbook_utils.tokenizers import WordPieceTokenizer

torch.set_num_threads(2)
transformers = pytest.importorskip("transformers")

HF_CLASSES = {ElectraDiscriminator: "ElectraForPreTraining", ElectraGenerator: "ElectraForMaskedLM",
              ElectraClassifier: "ElectraForSequenceClassification", ElectraForQA: "ElectraForQuestionAnswering"}


def hf_model(cfg: ElectraConfig, cls_name: str, n_labels: int = 2):
    hf_cfg = transformers.ElectraConfig(
        vocab_size=cfg.vocab_size, embedding_size=cfg.embedding_size, hidden_size=cfg.d_model,
        num_hidden_layers=cfg.n_layers, num_attention_heads=cfg.n_heads, intermediate_size=cfg.d_ff,
        max_position_embeddings=cfg.max_len, type_vocab_size=cfg.type_vocab_size, hidden_act="gelu",
        layer_norm_eps=cfg.eps, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
        pad_token_id=cfg.pad_id, num_labels=n_labels, attn_implementation="eager")
    return getattr(transformers, cls_name)(hf_cfg).eval()


def ours_model(cls, cfg: ElectraConfig, n_labels: int = 2):
    if cls in (ElectraDiscriminator, ElectraGenerator):
        return cls(cfg).eval()
    if cls is ElectraClassifier:
        return ElectraClassifier(ElectraDiscriminator(cfg), n_labels).eval()
    return ElectraForQA(ElectraDiscriminator(cfg)).eval()


def batch(cfg: ElectraConfig, seed: int, b: int = 3, t: int = 9):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(1, cfg.vocab_size, (b, t), generator=g)
    seg = (torch.arange(t)[None, :] >= torch.randint(1, t, (b, 1), generator=g)).long()
    keep = torch.ones(b, t, dtype=torch.bool)
    keep[0, t - 3:] = False  # padding in the first example
    ids[~keep] = cfg.pad_id
    return ids, seg, keep


def outputs(model, ids, seg, keep):
    """What the Hugging Face class's output holds, from ours, under HF's field names."""
    out = model(ids, seg, keep)
    if isinstance(model, ElectraForQA):
        return {"start_logits": out.start_logits, "end_logits": out.end_logits}
    return {"logits": out.logits}


@settings(max_examples=8, deadline=None)
@given(seed=st.integers(0, 1000), cls=st.sampled_from(list(HF_CLASSES)), shape=st.sampled_from(
    [(8, 16, 2), (16, 16, 4), (32, 16, 2), (8, 32, 4)]), n_layers=st.integers(1, 3), vocab=st.integers(20, 60))
def test_matches_hugging_face_electra(seed, cls, shape, n_layers, vocab):
    embedding_size, d_model, n_heads = shape  # embedding narrower, equal and wider than the width
    torch.manual_seed(seed)
    cfg = ElectraConfig(vocab_size=vocab, embedding_size=embedding_size, d_model=d_model, n_layers=n_layers,
                        n_heads=n_heads, d_ff=2 * d_model, max_len=16, dropout=0.0)
    theirs = hf_model(cfg, HF_CLASSES[cls], n_labels=2 if cls is ElectraForQA else 3)  # QA: start and end
    ours = ours_model(cls, cfg, n_labels=3)
    from_hf_state_dict(ours, theirs.state_dict())
    ids, seg, keep = batch(cfg, seed)
    with torch.no_grad():
        want = theirs(input_ids=ids, token_type_ids=seg, attention_mask=keep.long())
        got = outputs(ours, ids, seg, keep)
    for name, value in got.items():
        torch.testing.assert_close(value, getattr(want, name), atol=1e-5, rtol=1e-5)


def test_losses_match_hugging_face():
    torch.manual_seed(0)
    cfg = ElectraConfig.tiny(vocab_size=30)
    ids, seg, keep = batch(cfg, 3)
    disc, hf_disc = ElectraDiscriminator(cfg), hf_model(cfg, "ElectraForPreTraining")
    from_hf_state_dict(disc, hf_disc.state_dict())
    replaced = torch.rand(ids.shape, generator=torch.Generator().manual_seed(1)) < 0.3
    want = hf_disc(input_ids=ids, token_type_ids=seg, attention_mask=keep.long(), labels=replaced.long()).loss
    torch.testing.assert_close(disc(ids, seg, keep, replaced).loss, want)  # BCE over real tokens only
    qa, hf_qa = ElectraForQA(ElectraDiscriminator(cfg)), hf_model(cfg, "ElectraForQuestionAnswering")
    from_hf_state_dict(qa, hf_qa.state_dict())
    s, e = torch.tensor([1, 2, 0]), torch.tensor([3, 2, 4])
    want = hf_qa(input_ids=ids, token_type_ids=seg, attention_mask=keep.long(), start_positions=s,
                 end_positions=e).loss
    torch.testing.assert_close(qa(ids, seg, keep, s, e).loss, want)


@pytest.mark.parametrize("cls", list(HF_CLASSES))
def test_export_loads_in_transformers_with_the_same_logits(cls, tmp_path):
    torch.manual_seed(0)
    cfg = ElectraConfig.tiny(vocab_size=25)
    ours = ours_model(cls, cfg)
    save_pretrained(ours, tmp_path / "m")
    loaded = getattr(transformers, HF_CLASSES[cls]).from_pretrained(tmp_path / "m").eval()
    ids, seg, keep = batch(cfg, 2)
    with torch.no_grad():
        want = loaded(input_ids=ids, token_type_ids=seg, attention_mask=keep.long())
        for name, value in outputs(ours, ids, seg, keep).items():
            torch.testing.assert_close(value, getattr(want, name), atol=1e-5, rtol=1e-5)
    again = ours_model(cls, cfg)
    from_hf_state_dict(again, loaded.state_dict())
    for k, v in to_hf_state_dict(ours).items():
        torch.testing.assert_close(to_hf_state_dict(again)[k], v)


def test_exported_generator_runs_in_a_fill_mask_pipeline(tmp_path):
    tokenizer = WordPieceTokenizer.train(["the cat sat on the mat .", "a dog ran to the park ."], vocab_size=60,
                                         min_frequency=1)
    torch.manual_seed(0)
    gen = ElectraGenerator(ElectraConfig.tiny(vocab_size=tokenizer.vocab_size)).eval()
    save_pretrained(gen, tmp_path / "gen", tokenizer=tokenizer)
    ids, seg = tokenizer.encode_batch(["the cat [MASK] on the mat ."])
    where = int((ids[0] == tokenizer.mask_id).nonzero())
    with torch.no_grad():
        ours = gen(ids, seg).logits[0, where].softmax(-1)
    fill = transformers.pipeline("fill-mask", model=str(tmp_path / "gen"), device="cpu")
    best = fill("the cat [MASK] on the mat .", top_k=3)
    assert [b["token"] for b in best] == ours.topk(3).indices.tolist()
    torch.testing.assert_close(torch.tensor([b["score"] for b in best]), ours.topk(3).values, atol=1e-5, rtol=1e-5)


def pretraining_batch(cfg: ElectraConfig, seed: int = 0):
    ids, seg, keep = batch(cfg, seed, b=4, t=10)
    special = [cfg.pad_id, 1]  # 1 plays [MASK]
    ids[keep & (ids == 1)] = 2
    inputs, targets = mask_tokens(ids, special, cfg.vocab_size, 1, prob=0.4,
                                  generator=torch.Generator().manual_seed(seed), mix=(0.85, 0.0, 0.15))
    return ids, inputs, targets, seg, keep


def test_pretraining_replaces_only_masked_positions_and_labels_them():
    torch.manual_seed(0)
    cfg = ElectraConfig.tiny(vocab_size=30)
    model = ElectraPretraining(ElectraConfig.tiny(vocab_size=30, d_model=8, d_ff=16), cfg)
    ids, inputs, targets, seg, keep = pretraining_batch(cfg)
    masked = targets != -100
    assert masked.sum() >= 8
    out = model(inputs, seg, keep, targets, generator=torch.Generator().manual_seed(5))
    assert torch.equal(out.corrupted_ids[~masked], inputs[~masked])  # nothing else is touched
    assert torch.equal(out.replaced, out.corrupted_ids != ids)  # replaced = differs from the original
    assert not out.replaced[~masked].any()
    torch.testing.assert_close(out.loss, out.mlm_loss + LAMBDA * out.disc_loss)
    again = model(inputs, seg, keep, targets, generator=torch.Generator().manual_seed(5))
    assert torch.equal(again.corrupted_ids, out.corrupted_ids)  # one seed, one sample


def test_a_sample_equal_to_the_original_counts_as_original():
    torch.manual_seed(0)
    cfg = ElectraConfig.tiny(vocab_size=30)
    model = ElectraPretraining(cfg, cfg)
    ids, inputs, targets, seg, keep = pretraining_batch(cfg)
    masked = targets != -100
    # A generator that puts all its mass on one token: where the original is that token, the
    # sample equals it and the label must be 0.
    token = int(ids[masked][0])
    with torch.no_grad():
        model.generator.head_bias.fill_(-1e4)
        model.generator.head_bias[token] = 1e4
    out = model(inputs, seg, keep, targets)
    assert torch.equal(out.corrupted_ids[masked], torch.full_like(ids[masked], token))
    assert torch.equal(out.replaced[masked], ids[masked] != token)
    assert (ids[masked] == token).any() and (ids[masked] != token).any()


def test_no_gradient_flows_through_the_sample_and_the_embeddings_are_shared():
    torch.manual_seed(0)
    cfg = ElectraConfig.tiny(vocab_size=30)
    model = ElectraPretraining(ElectraConfig.tiny(vocab_size=30, d_model=8, d_ff=16), cfg)
    assert model.generator.body.embeddings is model.discriminator.body.embeddings
    names = {n for n, _ in model.named_parameters()}
    assert not any(n.startswith("generator.body.embeddings.") for n in names)  # listed once
    ids, inputs, targets, seg, keep = pretraining_batch(cfg)
    out = model(inputs, seg, keep, targets)
    disc_only = out.loss - out.mlm_loss  # lam * L_Disc with the live graph
    (LAMBDA * model.discriminator(out.corrupted_ids, seg, keep, out.replaced).loss).backward()
    gen_grads = [p.grad for n, p in model.generator.named_parameters() if not n.startswith("body.embeddings.")]
    assert all(g is None for g in gen_grads)  # the discriminator's loss never reaches the generator
    assert model.discriminator.body.embeddings.tok_emb.weight.grad.abs().sum() > 0
    assert disc_only.requires_grad


def test_gumbel_sample_follows_the_softmax():
    logits = torch.tensor([[2.0, 1.0, 0.0, -1.0]]).expand(40000, 4)
    draws = gumbel_sample(logits, torch.Generator().manual_seed(0))
    freq = torch.bincount(draws, minlength=4).double() / len(draws)
    p = logits[0].double().softmax(-1)
    # 40,000 draws: a standard error of at most 0.0025 per frequency; 4 of them is 0.01
    assert (freq - p).abs().max() < 0.01, (freq, p)


def test_flop_counts_equal_torchs_flop_counter():
    from torch.utils.flop_counter import FlopCounterMode

    torch.manual_seed(0)
    g_cfg = ElectraConfig.tiny(vocab_size=30, d_model=12, n_heads=2, d_ff=24, embedding_size=8)
    d_cfg = ElectraConfig.tiny(vocab_size=30, d_model=16, n_heads=2, d_ff=32, embedding_size=8)
    model = ElectraPretraining(g_cfg, d_cfg)
    ids, inputs, targets, seg, keep = pretraining_batch(d_cfg)
    keep = torch.ones_like(keep)  # the counter sees every position, padding or not
    with FlopCounterMode(display=False) as counter:
        model(inputs, seg, keep, targets).loss.backward()
    assert counter.get_total_flops() == electra_step_flops(g_cfg, d_cfg, *inputs.shape)
    b_cfg = BertConfig(vocab_size=30, d_model=16, n_layers=2, n_heads=2, d_ff=32, max_len=16, dropout=0.0)
    bert = Bert(b_cfg)
    with FlopCounterMode(display=False) as counter:
        bert(inputs, seg, keep, targets, heads=("mlm",)).loss.backward()
    assert counter.get_total_flops() == bert_step_flops(b_cfg, *inputs.shape)


def test_flop_counts_by_hand():
    # One layer, d = 4, d_ff = 8, vocab 10, embedding 2, batch 1, T = 3. Per token and layer:
    # Q, K, V, O 4*16 = 64 weights, feed-forward 2*4*8 = 64: 2*128 = 256; attention 4*3*4 = 48.
    assert encoder_forward_flops(4, 1, 8, 1, 3) == 3 * (256 + 48)
    c = ElectraConfig(vocab_size=10, embedding_size=2, d_model=4, n_layers=1, n_heads=1, d_ff=8, max_len=3)
    # generator = discriminator = c. Projection 2*4 = 8 weights per token. Generator head: 4*2 + 2*10 = 28;
    # discriminator head: 16 + 4 = 20. Forward: 3 tokens * (304 + 2*8) + 3 * 2 * 28 = 960 + 168 (generator),
    # 960 + 3 * 2 * 20 = 1080 (discriminator); training is three times the forward.
    assert electra_step_flops(c, c, 1, 3) == 3 * (960 + 168 + 1080)
    b = BertConfig(vocab_size=10, d_model=4, n_layers=1, n_heads=1, d_ff=8, max_len=3)
    # MLM head 16 + 40 = 56 weights per token; the pooler's forward on one [CLS]: 2 * 16.
    assert bert_step_flops(b, 1, 3) == 3 * (3 * 304 + 3 * 2 * 56) + 32


def test_bad_input_is_named():
    cfg = ElectraConfig.tiny(vocab_size=30)
    with pytest.raises(ValueError, match="lam"):
        ElectraPretraining(cfg, cfg, lam=0)
    with pytest.raises(ValueError, match="lam"):
        ElectraPretraining(cfg, cfg, lam=-1.0)
    with pytest.raises(ValueError, match="embedding_size"):
        ElectraPretraining(ElectraConfig.tiny(vocab_size=30, embedding_size=4), cfg)
    with pytest.raises(ValueError, match="vocab_size"):
        ElectraPretraining(ElectraConfig.tiny(vocab_size=31), cfg)
    with pytest.raises(ValueError, match="embedding_size"):
        ElectraConfig.tiny(embedding_size=0)
    model = ElectraPretraining(cfg, cfg)
    ids, inputs, targets, seg, keep = pretraining_batch(cfg)
    with pytest.raises(ValueError, match="targets are required"):
        model(inputs, seg, keep)
    bad = targets.clone()
    bad[0, -1] = 5  # a label where the first example is padding
    with pytest.raises(ValueError, match="padding position"):
        model(inputs, seg, keep, bad)
    bad = targets.clone()
    bad[1, 0] = cfg.pad_id
    with pytest.raises(ValueError, match="padding id"):
        model(inputs, seg, keep, bad)
    qa = ElectraForQA(ElectraDiscriminator(cfg))
    with pytest.raises(ValueError, match="outside the input"):
        qa(ids, seg, keep, torch.tensor([0, 1, 2, 3]), torch.tensor([1, 2, 10, 3]))
    with pytest.raises(ValueError, match="end_positions must be >="):
        qa(ids, seg, keep, torch.tensor([2, 1, 2, 3]), torch.tensor([1, 2, 3, 3]))
    with pytest.raises(ValueError, match="padding"):
        qa(ids, seg, keep, torch.tensor([8, 1, 2, 3]), torch.tensor([9, 2, 3, 3]))
    with pytest.raises(ValueError, match="both"):
        qa(ids, seg, keep, torch.tensor([0, 1, 2, 3]))
    disc = ElectraDiscriminator(cfg)
    with pytest.raises(ValueError, match="0 \\(original\\) or 1"):
        disc(ids, seg, keep, torch.full(ids.shape, 2))
    with pytest.raises(TypeError, match="discriminator"):
        ElectraClassifier(ElectraGenerator(cfg), 2)
    with pytest.raises(ValueError, match="n_labels"):
        ElectraClassifier(disc, 0)


def test_optimal_replaced_probability_by_hand_and_by_simulation():
    from lmbook_utils.electra import optimal_replaced_probability

    # m = 0.5, p_data(w) = 0.5, p_gen(w) = 0.25: replaced mass 0.5 * 0.25 * 0.5 = 0.0625 over
    # all mass on w 0.5 * 0.5 + 0.5 * 0.25 = 0.375: 1/6.
    got = optimal_replaced_probability(torch.tensor([0.5]), torch.tensor([0.25]), 0.5)
    torch.testing.assert_close(got, torch.tensor([1 / 6]))
    # a generator equal to the data: replaced only when masked and the sample differs
    p = torch.tensor([0.7, 0.2, 0.1, 0.0])
    torch.testing.assert_close(optimal_replaced_probability(p, p, 0.15),
                               torch.tensor([0.15 * 0.3, 0.15 * 0.8, 0.15 * 0.9, 0.0]))
    # simulate the corruption of one position and count: the frequency of "replaced" among
    # positions showing w converges to the formula
    g = torch.Generator().manual_seed(0)
    p_data, p_gen, n = torch.tensor([0.6, 0.3, 0.1]), torch.tensor([0.2, 0.3, 0.5]), 200_000
    original = torch.multinomial(p_data, n, replacement=True, generator=g)
    masked = torch.rand(n, generator=g) < 0.15
    shown = torch.where(masked, torch.multinomial(p_gen, n, replacement=True, generator=g), original)
    replaced = shown != original
    freq = torch.stack([replaced[shown == w].double().mean() for w in range(3)])
    torch.testing.assert_close(freq, optimal_replaced_probability(p_data, p_gen, 0.15).double(), atol=0.01, rtol=0)
    with pytest.raises(ValueError, match="mask_prob"):
        optimal_replaced_probability(p_data, p_gen, 1.0)
    with pytest.raises(ValueError, match="same shape"):
        optimal_replaced_probability(p_data, p_gen[:2], 0.15)
    with pytest.raises(ValueError, match="p_gen must hold probabilities"):
        optimal_replaced_probability(p_data, p_gen * 3, 0.15)


def test_electra_15_percent_scores_the_masked_positions_only():
    torch.manual_seed(0)
    cfg = ElectraConfig.tiny(vocab_size=30)
    ids, inputs, targets, seg, keep = pretraining_batch(cfg)
    masked = targets != -100
    results = {}
    for where in ("all", "masked"):
        torch.manual_seed(0)
        model = ElectraPretraining(cfg, cfg, disc_positions=where)
        out = model(inputs, seg, keep, targets, generator=torch.Generator().manual_seed(5))
        per_token = torch.nn.functional.binary_cross_entropy_with_logits(out.logits, out.replaced.float(),
                                                                         reduction="none")
        results[where] = (out.disc_loss, per_token[keep].mean(), per_token[masked].mean())
    torch.testing.assert_close(results["all"][0], results["all"][1])        # every real token
    torch.testing.assert_close(results["masked"][0], results["masked"][2])  # the masked ones only
    assert not torch.allclose(results["all"][0], results["masked"][0])
    with pytest.raises(ValueError, match="disc_positions"):
        ElectraPretraining(cfg, cfg, disc_positions="replaced")


# ---- the MLM ablations of Table 5 (section 3.3) ---------------------------------------------
MASK = 1  # pretraining_batch's [MASK] id


def small_generator() -> ElectraConfig:
    return ElectraConfig.tiny(vocab_size=30, d_model=8, d_ff=16)


def test_replace_mlm_reads_generator_samples_and_scores_the_masked_positions():
    torch.manual_seed(0)
    cfg = ElectraConfig.tiny(vocab_size=30)
    model = ReplacedMLMPretraining(small_generator(), cfg)
    assert model.copy_head is None
    ids, inputs, targets, seg, keep = pretraining_batch(cfg)
    masked = targets != -100
    assert (inputs[masked] == MASK).any()  # the generator's input holds [MASK]s
    with torch.no_grad():
        model.generator.head_bias[MASK] = -1e4  # a generator that never samples [MASK]
    seen = []
    hook = model.mlm.register_forward_pre_hook(lambda module, args: seen.append(args[0].clone()))
    out = model(inputs, seg, keep, targets, generator=torch.Generator().manual_seed(5))
    hook.remove()
    assert torch.equal(seen[0], out.corrupted_ids)  # the main model reads the corrupted ids
    assert not (seen[0] == MASK).any()  # so it never sees [MASK]
    assert torch.equal(out.corrupted_ids[~masked], inputs[~masked])  # nothing else is touched
    # the masked positions hold the generator's samples: the same seed draws them again
    assert torch.equal(out.corrupted_ids[masked],
                       gumbel_sample(out.generator_logits[masked], torch.Generator().manual_seed(5)))
    assert torch.equal(out.replaced, out.corrupted_ids != ids) and out.replaced.any()
    logits = model.mlm(out.corrupted_ids, seg, keep).logits
    torch.testing.assert_close(out.logits, logits)
    torch.testing.assert_close(out.main_loss, F.cross_entropy(logits[masked], ids[masked]))  # masked only
    torch.testing.assert_close(out.loss, out.mlm_loss + out.main_loss)
    assert out.copy_prob is None


def test_replaced_mlm_corrupts_the_input_as_electra_does():
    torch.manual_seed(0)
    cfg = ElectraConfig.tiny(vocab_size=30)
    electra = ElectraPretraining(small_generator(), cfg)
    ids, inputs, targets, seg, keep = pretraining_batch(cfg)
    for all_tokens in (False, True):
        model = ReplacedMLMPretraining(small_generator(), cfg, all_tokens=all_tokens)
        model.generator.load_state_dict(electra.generator.state_dict())  # the shared embeddings too
        a = electra(inputs, seg, keep, targets, generator=torch.Generator().manual_seed(3))
        b = model(inputs, seg, keep, targets, generator=torch.Generator().manual_seed(3))
        assert torch.equal(a.corrupted_ids, b.corrupted_ids) and torch.equal(a.replaced, b.replaced)
        torch.testing.assert_close(a.mlm_loss, b.mlm_loss)


def all_tokens_model(cfg: ElectraConfig) -> ReplacedMLMPretraining:
    torch.manual_seed(0)
    model = ReplacedMLMPretraining(small_generator(), cfg, all_tokens=True)
    with torch.no_grad():
        model.copy_head.weight.normal_(0.0, 1.0)  # copy probabilities far from 1/2 and unequal
    return model


def test_all_tokens_mlm_loss_is_the_copy_mixture_over_real_tokens():
    cfg = ElectraConfig.tiny(vocab_size=30)
    model = all_tokens_model(cfg)
    ids, inputs, targets, seg, keep = pretraining_batch(cfg)
    out = model(inputs, seg, keep, targets, generator=torch.Generator().manual_seed(5))
    assert out.replaced.any() and (~keep).any()
    # by hand, in probability space: p(y) = D [y = input token] + (1 - D) softmax(logits)(y)
    m = model.mlm(out.corrupted_ids, seg, keep)
    d = torch.sigmoid(model.copy_head(m.last_hidden_state).squeeze(-1)).double()
    copy = F.one_hot(out.corrupted_ids, cfg.vocab_size).double()
    p = d[..., None] * copy + (1 - d[..., None]) * m.logits.double().softmax(-1)
    nll = -p.gather(-1, ids[..., None]).squeeze(-1).log()
    torch.testing.assert_close(out.main_loss.double(), nll[keep].mean(), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(out.copy_prob.double(), d)
    torch.testing.assert_close(out.logits, m.logits)
    torch.testing.assert_close(out.loss, out.mlm_loss + out.main_loss)
    assert d.std() > 0.1  # the copy probability varies from token to token


def test_all_tokens_mlm_ignores_padding():
    cfg = ElectraConfig.tiny(vocab_size=30)
    model = all_tokens_model(cfg)
    ids, inputs, targets, seg, keep = pretraining_batch(cfg)
    pad = ~keep
    out = model(inputs, seg, keep, targets, generator=torch.Generator().manual_seed(5))
    noise = torch.randn(*ids.shape, cfg.vocab_size, generator=torch.Generator().manual_seed(0))

    def shout_logits(module, args, output):  # other MLM logits at the padding positions
        output.logits = output.logits + 30 * noise * pad[..., None]

    hooks = [model.mlm.register_forward_hook(shout_logits),
             model.copy_head.register_forward_hook(lambda module, args, output: output + 30 * pad[..., None])]
    moved = model(inputs, seg, keep, targets, generator=torch.Generator().manual_seed(5))
    for h in hooks:
        h.remove()
    assert not torch.allclose(moved.logits[pad], out.logits[pad])
    assert not torch.allclose(moved.copy_prob[pad], out.copy_prob[pad])
    torch.testing.assert_close(moved.main_loss, out.main_loss)


def test_all_tokens_mlm_copies_when_the_copy_head_says_so():
    cfg = ElectraConfig.tiny(vocab_size=30)
    model = all_tokens_model(cfg)
    ids, seg, keep = batch(cfg, 0, b=4, t=10)
    token = 3
    masked = keep & (torch.arange(10) % 3 == 1)
    ids[masked] = token
    inputs = ids.masked_fill(masked, MASK)
    targets = torch.where(masked, ids, torch.full_like(ids, -100))

    def run(sampled: int, copy_bias: float):
        with torch.no_grad():  # a generator that always samples `sampled`, a copy head that is sure
            model.generator.head_bias.fill_(-1e4)
            model.generator.head_bias[sampled] = 1e4
            model.copy_head.weight.zero_()
            model.copy_head.bias.fill_(copy_bias)
        return model(inputs, seg, keep, targets)

    out = run(token, 50.0)  # every sample equals its original: no replacement, and D = 1
    assert not out.replaced.any()
    assert out.main_loss < 1e-6
    out = run(token + 1, 50.0)  # replacements, which copying gets wrong
    assert out.replaced[masked].all()
    assert out.main_loss > 10
    out = run(token, -50.0)  # D = 0: the MLM's cross-entropy on every real token
    torch.testing.assert_close(out.main_loss, F.cross_entropy(out.logits[keep], ids[keep]))


def test_replaced_mlm_no_gradient_through_the_sample_and_the_embeddings_are_shared():
    cfg = ElectraConfig.tiny(vocab_size=30)
    ids, inputs, targets, seg, keep = pretraining_batch(cfg)
    for all_tokens in (False, True):
        torch.manual_seed(0)
        model = ReplacedMLMPretraining(small_generator(), cfg, all_tokens=all_tokens)
        assert model.generator.body.embeddings is model.mlm.body.embeddings
        names = {n for n, _ in model.named_parameters()}
        assert not any(n.startswith("generator.body.embeddings.") for n in names)  # listed once
        ElectraDiscriminator(cfg).body.load_state_dict(model.mlm.body.state_dict())  # a discriminator's names
        model(inputs, seg, keep, targets).loss.backward()
        own = {n: p for n, p in model.generator.named_parameters() if not n.startswith("body.embeddings.")}
        total = {n: p.grad.clone() for n, p in own.items()}
        shared = model.mlm.body.embeddings.tok_emb.weight.grad.clone()
        main = [(n, p) for n, p in model.named_parameters() if not n.startswith("generator.")]
        assert all(p.grad is not None and p.grad.abs().sum() > 0 for n, p in main)  # the main model learns
        model.zero_grad()
        model.generator(inputs, seg, keep, targets).loss.backward()  # L_MLM alone
        for n, p in own.items():  # the main loss adds nothing to the generator's gradients
            torch.testing.assert_close(p.grad, total[n], msg=n)
        # but it reaches the shared embeddings
        assert not torch.allclose(model.mlm.body.embeddings.tok_emb.weight.grad, shared)


def test_replaced_mlm_refuses_what_electra_refuses_with_the_same_message():
    cfg = ElectraConfig.tiny(vocab_size=30)
    with pytest.raises(TypeError, match="all_tokens must be a bool"):
        ReplacedMLMPretraining(cfg, cfg, all_tokens="yes")
    with pytest.raises(TypeError, match="model_config must be an ElectraConfig"):
        ReplacedMLMPretraining(cfg, BertConfig(vocab_size=30))
    with pytest.raises(TypeError, match="generator_config must be an ElectraConfig"):
        ReplacedMLMPretraining(None, cfg)
    with pytest.raises(ValueError, match="model_config.pad_id"):
        ReplacedMLMPretraining(ElectraConfig.tiny(vocab_size=30, pad_id=3), cfg)
    with pytest.raises(ValueError, match="embedding_size"):
        ReplacedMLMPretraining(ElectraConfig.tiny(vocab_size=30, embedding_size=4), cfg)
    with pytest.raises(ValueError, match="vocab_size"):
        ReplacedMLMPretraining(ElectraConfig.tiny(vocab_size=31), cfg)
    ids, inputs, targets, seg, keep = pretraining_batch(cfg)

    def changed(t: torch.Tensor, where: tuple[int, int], value: int) -> torch.Tensor:
        t = t.clone()
        t[where] = value
        return t

    cases = [((inputs, seg, keep), "targets are required"),
             ((inputs, seg, keep, changed(targets, (0, -1), 5)), "padding position"),
             ((inputs, seg, keep, changed(targets, (1, 0), cfg.pad_id)), "padding id"),
             ((inputs, seg, keep, changed(targets, (1, 0), 30)), "ids in \\[0, 30\\)"),
             ((inputs, seg, keep, changed(targets, (1, 0), -5)), "ids in \\[0, 30\\)"),
             ((inputs, seg, keep, targets.float()), "integer tensor"),
             ((changed(inputs, (1, 0), 30), seg, keep, targets), "outside \\[0, 30\\)"),
             ((inputs, changed(seg, (1, 0), 2), keep, targets), "segment_ids"),
             ((inputs, seg, keep, torch.full_like(targets, -100)), "no masked position")]
    electra = ElectraPretraining(cfg, cfg)
    for all_tokens in (False, True):
        model = ReplacedMLMPretraining(cfg, cfg, all_tokens=all_tokens)
        for args, match in cases:
            with pytest.raises(ValueError, match=match) as theirs:
                electra(*args)
            with pytest.raises(ValueError, match=match) as ours:
                model(*args)
            assert str(ours.value) == str(theirs.value)


@pytest.mark.parametrize("all_tokens", [False, True])
def test_replaced_mlm_flop_counts_equal_torchs_flop_counter(all_tokens):
    from torch.utils.flop_counter import FlopCounterMode

    torch.manual_seed(0)
    g_cfg = ElectraConfig.tiny(vocab_size=30, d_model=12, n_heads=2, d_ff=24, embedding_size=8)
    m_cfg = ElectraConfig.tiny(vocab_size=30, d_model=16, n_heads=2, d_ff=32, embedding_size=8)
    model = ReplacedMLMPretraining(g_cfg, m_cfg, all_tokens=all_tokens)
    ids, inputs, targets, seg, keep = pretraining_batch(m_cfg)
    keep = torch.ones_like(keep)  # the counter sees every position, padding or not
    with FlopCounterMode(display=False) as counter:
        model(inputs, seg, keep, targets).loss.backward()
    assert counter.get_total_flops() == replaced_mlm_step_flops(g_cfg, m_cfg, *inputs.shape, all_tokens=all_tokens)


def test_replaced_mlm_flop_counts_by_hand():
    c = ElectraConfig(vocab_size=10, embedding_size=2, d_model=4, n_layers=1, n_heads=1, d_ff=8, max_len=3)
    # As in test_flop_counts_by_hand, an MLM's forward on 3 tokens: 960 + 168 = 1128, for the
    # generator and for the main model; the copy head adds 3 tokens * 2 * 4 weights = 24.
    assert replaced_mlm_step_flops(c, c, 1, 3) == 3 * (1128 + 1128)
    assert replaced_mlm_step_flops(c, c, 1, 3, all_tokens=True) == 3 * (1128 + 1128 + 24)
    with pytest.raises(TypeError, match="all_tokens"):
        replaced_mlm_step_flops(c, c, 1, 3, all_tokens=1)
    with pytest.raises(TypeError, match="model must be an ElectraConfig"):
        replaced_mlm_step_flops(c, BertConfig(vocab_size=10), 1, 3)
    with pytest.raises(ValueError, match="seq_len"):
        replaced_mlm_step_flops(c, c, 1, 0)

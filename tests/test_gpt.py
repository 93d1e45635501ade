"""GPT: parity with Hugging Face GPT-2 (logits and greedy generation), sampling filters, the KV cache."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from lmbook_utils.decoding import beam_search, filter_logits, generate
from lmbook_utils.gpt import (GPT, GPTClassifier, GPTConfig, from_hf_state_dict, save_pretrained,
                              training_flops_per_token)
from lmbook_utils.repro import set_seed

torch.set_num_threads(2)
transformers = pytest.importorskip("transformers")


def hf_gpt2(cfg: GPTConfig):
    hf_cfg = transformers.GPT2Config(vocab_size=cfg.vocab_size, n_positions=cfg.max_len, n_embd=cfg.d_model,
                                     n_layer=cfg.n_layers, n_head=cfg.n_heads, resid_pdrop=0.0, embd_pdrop=0.0,
                                     attn_pdrop=0.0, layer_norm_epsilon=cfg.eps, bos_token_id=0, eos_token_id=0)
    return transformers.GPT2LMHeadModel(hf_cfg).eval()


@settings(max_examples=6, deadline=None)
@given(seed=st.integers(0, 1000), d_model=st.sampled_from([16, 32]), n_heads=st.sampled_from([1, 2, 4]),
       n_layers=st.integers(1, 3), vocab=st.integers(10, 60))
def test_logits_match_hf_gpt2(seed, d_model, n_heads, n_layers, vocab):
    torch.manual_seed(seed)
    cfg = GPTConfig(vocab_size=vocab, d_model=d_model, n_layers=n_layers, n_heads=n_heads, max_len=24)
    theirs = hf_gpt2(cfg)
    ours = GPT(cfg).eval()
    from_hf_state_dict(ours, theirs.state_dict())
    ids = torch.randint(0, vocab, (3, 11), generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        torch.testing.assert_close(ours(ids).logits, theirs(ids).logits, atol=1e-5, rtol=1e-5)


def test_greedy_generation_equals_hf_generate_and_export_round_trips(tmp_path):
    torch.manual_seed(0)
    cfg = GPTConfig(vocab_size=40, d_model=32, n_layers=2, n_heads=4, max_len=32)
    ours = GPT(cfg).eval()
    save_pretrained(ours, tmp_path / "gpt")
    theirs = transformers.GPT2LMHeadModel.from_pretrained(tmp_path / "gpt").eval()
    prompt = torch.tensor([[3, 7, 9, 1], [5, 5, 2, 8]])
    with torch.no_grad():
        torch.testing.assert_close(ours(prompt).logits, theirs(prompt).logits, atol=1e-5, rtol=1e-5)
        want = theirs.generate(prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=12,
                               do_sample=False, pad_token_id=0)
    got = generate(ours, prompt, 12)
    assert torch.equal(got, want)


def test_kv_cache_gives_the_same_tokens_as_recomputing():
    torch.manual_seed(1)
    model = GPT(GPTConfig(vocab_size=30, d_model=32, n_layers=2, n_heads=2, max_len=40)).eval()
    prompt = torch.randint(0, 30, (2, 5))
    for kw in ({}, {"do_sample": True, "temperature": 0.8, "top_k": 10, "seed": 3}):
        assert torch.equal(generate(model, prompt, 20, use_cache=True, **kw),
                           generate(model, prompt, 20, use_cache=False, **kw))


def test_top_k_never_samples_outside_the_k_best():
    torch.manual_seed(2)
    logits = torch.randn(4, 50)
    kept = filter_logits(logits, top_k=5)
    assert torch.equal(torch.isfinite(kept), logits >= torch.topk(logits, 5).values[:, -1:])
    model = GPT(GPTConfig(vocab_size=50, d_model=16, n_layers=1, n_heads=2, max_len=20)).eval()
    prompt = torch.randint(0, 50, (64, 1), generator=torch.Generator().manual_seed(0))
    out = generate(model, prompt, 1, do_sample=True, top_k=3, seed=0)
    with torch.no_grad():
        best3 = torch.topk(model(prompt).logits[:, -1], 3).indices
    assert (out[:, 1:2] == best3).any(-1).all()


def test_top_p_keeps_the_smallest_set_reaching_p():
    probs = torch.tensor([[0.5, 0.3, 0.15, 0.05]])
    logits = probs.log()
    assert torch.isfinite(filter_logits(logits, top_p=0.5)).tolist() == [[True, False, False, False]]
    assert torch.isfinite(filter_logits(logits, top_p=0.8)).tolist() == [[True, True, False, False]]
    assert torch.isfinite(filter_logits(logits, top_p=0.81)).tolist() == [[True, True, True, False]]
    assert torch.isfinite(filter_logits(logits, top_p=1.0)).all()
    shuffled = logits[:, [2, 0, 3, 1]]  # order of the vocabulary must not matter
    assert torch.isfinite(filter_logits(shuffled, top_p=0.8)).tolist() == [[False, True, False, True]]


def test_repetition_penalty_and_eos():
    torch.manual_seed(3)
    model = GPT(GPTConfig(vocab_size=12, d_model=16, n_layers=1, n_heads=2, max_len=60)).eval()
    prompt = torch.tensor([[1, 2, 3]])
    plain = generate(model, prompt, 40)
    penalized = generate(model, prompt, 40, repetition_penalty=5.0)
    assert len(set(penalized[0, 3:].tolist())) >= len(set(plain[0, 3:].tolist()))
    first = int(plain[0, 3])
    stopped = generate(model, torch.tensor([[1, 2, 3], [4, 5, 6]]), 10, eos_id=first)
    assert stopped.shape[1] <= 13
    row = stopped[0, 3:].tolist()
    assert row[0] == first and all(t == first for t in row)  # after EOS only EOS (no pad_id)
    padded = GPT(GPTConfig(**{**model.config.__dict__, "pad_id": 0}))
    padded.load_state_dict(model.state_dict())
    row = generate(padded.eval(), torch.tensor([[1, 2, 3]]), 10, eos_id=first)[0, 3:].tolist()
    assert row[0] == first and all(t == 0 for t in row[1:])  # with a pad_id: padding after EOS


def test_beam_search_finds_at_least_the_greedy_score():
    torch.manual_seed(4)
    model = GPT(GPTConfig(vocab_size=20, d_model=16, n_layers=1, n_heads=2, max_len=30)).eval()
    prompt = torch.tensor([[1, 2]])

    def logprob(seq):
        with torch.no_grad():
            lp = model(seq[:, :-1]).logits.log_softmax(-1)
        return float(lp[0, 1:].gather(-1, seq[0, 2:, None]).sum())

    greedy = generate(model, prompt, 6)
    beam = beam_search(model, prompt, 6, beam_size=5)
    assert beam.shape == greedy.shape and logprob(beam) >= logprob(greedy) - 1e-6
    assert torch.equal(beam_search(model, prompt, 6, beam_size=1), greedy)


def test_bad_input_is_named():
    model = GPT(GPTConfig(vocab_size=10, d_model=16, n_layers=1, n_heads=2, max_len=8))
    p = torch.tensor([[1, 2]])
    with pytest.raises(ValueError, match="temperature must be a finite number > 0"):
        generate(model, p, 3, do_sample=True, temperature=0)
    with pytest.raises(ValueError, match="top_k"):
        generate(model, p, 3, do_sample=True, top_k=0)
    with pytest.raises(ValueError, match="top_p"):
        generate(model, p, 3, do_sample=True, top_p=1.5)
    with pytest.raises(ValueError, match="repetition_penalty"):
        generate(model, p, 3, repetition_penalty=0.5)
    with pytest.raises(ValueError, match="max_len=8"):
        generate(model, p, 7)
    with pytest.raises(ValueError, match="bos_id is for encoder-decoder models"):
        generate(model, p, 3, bos_id=1)
    with pytest.raises(ValueError, match=r"attention_mask must be a bool tensor of shape \(1, 2\)"):
        generate(model, p, 3, attention_mask=torch.ones(1, 3, dtype=torch.bool))
    with pytest.raises(TypeError, match="model must be Decodable"):
        generate(torch.nn.Linear(2, 2), p, 3)
    with pytest.raises(ValueError, match="exceed the model's max_len"):
        model(torch.ones(1, 9, dtype=torch.long))
    with pytest.raises(ValueError, match=r"targets must be an integer tensor of shape \(1, 2\)"):
        model(p, targets=torch.tensor([[1]]))
    with pytest.raises(ValueError, match=r"GPTConfig.d_model \(10\) must be divisible by n_heads \(3\)"):
        GPTConfig(vocab_size=10, d_model=10, n_heads=3)
    with pytest.raises(ValueError, match="GPTConfig.max_len must be an int >= 1, got 0"):
        GPTConfig(vocab_size=10, max_len=0)


def test_last_hidden_state_gives_the_logits():
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=13, d_model=16, n_layers=1, n_heads=2, max_len=10)).eval()
    out = model(torch.randint(13, (2, 6)))
    torch.testing.assert_close(out.last_hidden_state @ model.wte.weight.T, out.logits)


def test_classifier_reads_the_last_real_token_and_adds_the_lm_loss():
    torch.manual_seed(0)
    gpt = GPT(GPTConfig(vocab_size=13, d_model=16, n_layers=2, n_heads=2, max_len=10))
    clf = GPTClassifier(gpt, n_classes=3, lm_weight=0.5).eval()
    ids = torch.tensor([[1, 5, 7, 2, 0, 0], [1, 4, 4, 9, 8, 2]])
    lengths = torch.tensor([4, 6])
    keep = torch.arange(6)[None] < lengths[:, None]
    labels = torch.tensor([2, 0])
    out = clf(ids, labels, keep)
    alone = clf(ids[:1, :4], labels[:1])  # the padding must not matter
    torch.testing.assert_close(out.logits[:1], alone.logits)
    hidden = gpt(ids).last_hidden_state
    torch.testing.assert_close(out.logits[1], clf.head(hidden[1, 5]))
    targets = ids[:, 1:].masked_fill(torch.arange(5)[None] >= (lengths[:, None] - 1), -100)
    lm = torch.nn.functional.cross_entropy(gpt(ids[:, :-1]).logits.flatten(0, 1), targets.flatten(), ignore_index=-100)
    want = torch.nn.functional.cross_entropy(out.logits, labels) + 0.5 * lm
    torch.testing.assert_close(out.loss, want)


def test_classifier_bad_input():
    gpt = GPT(GPTConfig(vocab_size=13, d_model=16, n_layers=1, n_heads=2, max_len=10))
    with pytest.raises(ValueError, match="n_classes must be an int >= 2"):
        GPTClassifier(gpt, n_classes=1)
    with pytest.raises(ValueError, match="lm_weight must be a number >= 0"):
        GPTClassifier(gpt, n_classes=2, lm_weight=-1.0)
    clf = GPTClassifier(gpt, n_classes=2)
    ids = torch.ones(2, 4, dtype=torch.long)
    with pytest.raises(ValueError, match="attention_mask must mark a right-padded batch"):
        clf(ids, None, torch.tensor([[False, True, True, True], [True] * 4]))
    with pytest.raises(ValueError, match=r"attention_mask must be a bool tensor of shape \(2, 4\)"):
        clf(ids, None, torch.ones(2, 5, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"labels must be a \(batch=2,\) tensor of class ids in \[0, 2\)"):
        clf(ids, torch.tensor([0, 2]))


def test_top_p_one_keeps_every_token_of_a_large_vocabulary():
    # float32 cumulative sums of a peaked distribution reach 1.0 before the tail: top_p = 1.0
    # must still keep the tail (it means "no nucleus filtering").
    logits = torch.zeros(1, 50_000)
    logits[0, 0] = 30.0
    assert torch.isfinite(filter_logits(logits, top_p=1.0)).all()


def test_unseeded_sampling_follows_the_global_generator():
    torch.manual_seed(5)
    model = GPT(GPTConfig(vocab_size=30, d_model=16, n_layers=1, n_heads=2, max_len=20))
    prompt = torch.zeros(4, 1, dtype=torch.long)
    set_seed(1)
    a = generate(model, prompt, 12, do_sample=True)
    b = generate(model, prompt, 12, do_sample=True)
    set_seed(1)
    c = generate(model, prompt, 12, do_sample=True)
    assert torch.equal(a, c)  # set_seed makes unseeded sampling reproducible
    assert not torch.equal(a, b)  # and successive calls continue the stream instead of repeating


def test_gpt_config_pad_id_is_checked():
    with pytest.raises(ValueError, match="pad_id"):
        GPTConfig(vocab_size=10, pad_id=10)


def _left_pad(prompts: list[list[int]], pad: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(map(len, prompts))
    ids = torch.tensor([[pad] * (width - len(p)) + p for p in prompts])
    keep = torch.tensor([[False] * (width - len(p)) + [True] * len(p) for p in prompts])
    return ids, keep


def test_a_left_padded_batch_gives_each_prompt_alone_its_logits_and_tokens():
    torch.manual_seed(6)
    model = GPT(GPTConfig.tiny(vocab_size=23, max_len=24, pad_id=0)).eval()
    prompts = [[5, 9, 2, 7, 7, 3], [4], [8, 1, 6]]
    ids, keep = _left_pad(prompts)
    with torch.no_grad():
        batch = model(ids, attention_mask=keep).logits
        for b, p in enumerate(prompts):
            alone = model(torch.tensor([p])).logits[0]
            torch.testing.assert_close(batch[b, keep[b]], alone, atol=1e-5, rtol=1e-5)
    for kw in ({}, {"use_cache": False}, {"eos_id": 3}):
        together = generate(model, ids, 10, attention_mask=keep, **kw)
        for b, p in enumerate(prompts):
            alone = generate(model, torch.tensor([p]), 10, **kw)[0].tolist()
            row = together[b, ids.shape[1] - len(p):].tolist()  # the padding cut off
            assert row[:len(alone)] == alone and all(t == 0 for t in row[len(alone):])  # then pad_id
    beams = beam_search(model, ids, 6, beam_size=3, attention_mask=keep)
    for b, p in enumerate(prompts):
        alone = beam_search(model, torch.tensor([p]), 6, beam_size=3)[0]
        assert beams[b, ids.shape[1] - len(p):].tolist() == alone.tolist()


def test_left_padding_matches_hf_gpt2_with_its_attention_mask():
    torch.manual_seed(7)
    cfg = GPTConfig.tiny(vocab_size=19, max_len=20)
    theirs = hf_gpt2(cfg)
    ours = GPT(cfg).eval()
    from_hf_state_dict(ours, theirs.state_dict())
    ids, keep = _left_pad([[3, 4, 5, 6, 7], [8, 9]])
    positions = (keep.long().cumsum(1) - 1).clamp(min=0)
    with torch.no_grad():
        want = theirs(ids, attention_mask=keep.long(), position_ids=positions).logits
        got = ours(ids, attention_mask=keep).logits
    torch.testing.assert_close(got[keep], want[keep], atol=1e-5, rtol=1e-5)


def test_exported_folder_runs_in_a_text_generation_pipeline(tmp_path):
    from lmbook_utils.tokenizers import Tokenizer
    from lmbook_utils.train import TrainConfig, train

    words = "the cat sat on a mat . dog ran to".split()
    tok = Tokenizer(words, unk=None)
    story = [tok.bos_id] + [tok.token_to_id(w) for w in "the cat sat on a mat .".split()] + [tok.eos_id]
    data = [(torch.tensor([story[:-1]] * 4), torch.tensor([story[1:]] * 4))]
    set_seed(0)
    model = GPT(GPTConfig.tiny(vocab_size=tok.vocab_size, pad_id=tok.pad_id))
    train(model, data, TrainConfig(max_steps=60, lr=3e-2, warmup_steps=0, eval_every=60), progress=False)
    prompt = ["<bos>", "the", "cat"]
    ours = generate(model.eval(), torch.tensor([[tok.token_to_id(w) for w in prompt]]), 6, eos_id=tok.eos_id)
    assert [tok.id_to_token(i) for i in ours[0, 3:].tolist()] == "sat on a mat . <eos>".split()  # it learned
    save_pretrained(model, tmp_path / "gpt", tokenizer=tok)
    pipe = transformers.pipeline("text-generation", model=str(tmp_path / "gpt"), device="cpu")
    text = pipe(" ".join(prompt), max_new_tokens=6, do_sample=False, return_full_text=False)[0]["generated_text"]
    assert text.split() == "sat on a mat .".split()  # the pipeline drops special tokens such as <eos>


def test_config_presets_and_d_ff():
    assert GPTConfig.tiny().d_ff == 4 * 16
    assert GPT(GPTConfig.tiny(d_ff=24)).blocks[0].mlp.linear1.out_features == 24
    with pytest.raises(ValueError, match="GPTConfig.d_ff must be an int >= 1"):
        GPTConfig.tiny(d_ff=0)


def test_training_flops_per_token_match_torchs_flop_counter():
    from torch.utils.flop_counter import FlopCounterMode

    cfg = GPTConfig.tiny(vocab_size=37, d_model=16, n_layers=2, max_len=12, d_ff=40)
    model = GPT(cfg)
    for block in model.blocks:  # plain matrix products, which the counter sees (not the fused CPU kernel)
        block.attn.kernel = "explicit"
    ids = torch.randint(0, 37, (3, 12), generator=torch.Generator().manual_seed(0))
    with FlopCounterMode(display=False) as counter:
        model(ids, ids).loss.backward()
    assert counter.get_total_flops() == 3 * 12 * training_flops_per_token(cfg, 12)
    # Kaplan et al.'s 6N is the part without the attention and the output layer
    n = sum(p.numel() for name, p in model.named_parameters() if name.startswith("blocks") and p.dim() == 2)
    assert training_flops_per_token(cfg, 12) == 6 * n + 6 * 16 * 37 + 12 * 2 * 12 * 16
    with pytest.raises(ValueError, match="n_ctx must be an int in"):
        training_flops_per_token(cfg, 13)

"""Device correctness: every package function makes its new tensors on its inputs' device.

A reader with a GPU or Apple silicon must be able to run every chapter. A function that builds
a CPU tensor (torch.tensor, torch.arange, torch.rand, ...) and combines it with a CUDA or MPS
input fails there ("Expected all tensors to be on the same device") and yet passes every test
on a CPU. Meta tensors catch this without a GPU: they have a shape, a dtype and a device but
no values, and an operation that mixes a meta tensor with a CPU tensor raises. So the tests
pass meta inputs (or a model moved with `.to("meta")`) and check that the outputs are meta.

A function that reads values (`.item()`, `.tolist()`, `int(t.max())`) cannot run on meta. For
those the tests use a stand-in model on meta that records the device of what it is given, or
check the parts that need no values.

One section per module, in the order of the chapters that introduce them. Modules without a
section make no tensors from their inputs: toyworld and textstats work on strings, and viz
and plots draw, so they move what they are given to the CPU on purpose (`.cpu()`).
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from lmbook_utils import exercises
from lmbook_utils.bert import Bert, BertConfig, mask_tokens
from lmbook_utils.data import SequenceDataset, pad_sequences
from lmbook_utils.fewshot import accuracy, few_shot_prompts, vocabulary
from lmbook_utils.neural_lm import NPLM, RNNLM, NPLMConfig, RNNLMConfig
from lmbook_utils.seq2seq import Seq2Seq, Seq2SeqConfig
from lmbook_utils.probes import induction_scores

META = torch.device("meta")


def meta_ids(*shape: int) -> torch.Tensor:
    """Token ids on the meta device: a shape and a dtype, no values."""
    return torch.zeros(*shape, dtype=torch.long, device=META)


class MetaModel(torch.nn.Module):
    """A stand-in model whose parameters are on meta. It records the device of the ids it is
    given and returns CPU values (`logits`, `attentions`), for functions that read them."""

    def __init__(self, vocab: int = 8, layers: int = 2, heads: int = 2) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(1, device=META))
        self.vocab, self.layers, self.heads, self.seen = vocab, layers, heads, []

    def forward(self, ids: torch.Tensor, attention_mask: torch.Tensor | None = None, need_weights: bool = False):
        self.seen.append(ids.device)
        b, t = ids.shape
        weights = torch.full((b, self.heads, t, t), 1.0 / t)
        return SimpleNamespace(logits=torch.zeros(b, t, self.vocab),
                               attentions=[weights] * self.layers if need_weights else None)


# ---- neural_lm and seq2seq (chapter 02_neural_lm) ------------------------------------------

def test_nplm_forward_runs_on_meta():
    # the window of each position (its padding with the first token) is built from the input
    model = NPLM(NPLMConfig.tiny(direct=True)).to(META)
    ids = meta_ids(2, 5)
    out = model(ids, targets=ids)
    assert out.logits.device == out.loss.device == META
    assert out.logits.shape == (2, 5, 23)
    assert model.windows(ids).device == META


@pytest.mark.parametrize("cell", ["rnn", "lstm"])
def test_rnnlm_forward_with_state_and_truncation_runs_on_meta(cell):
    model = RNNLM(RNNLMConfig.tiny(cell=cell, tie_weights=True)).to(META)
    ids = meta_ids(2, 7)
    out = model(ids, targets=ids, bptt=3)
    assert out.logits.device == out.loss.device == META
    again = model(ids, state=out.state)                         # continuing a text from the returned state
    parts = again.state if cell == "lstm" else (again.state,)
    assert all(p.device == META for p in parts)


def test_seq2seq_forward_runs_on_meta():
    config = Seq2SeqConfig(src_vocab=11, tgt_vocab=13, d_embed=8, d_hidden=8, n_layers=1)
    model = Seq2Seq(config).to(META)
    out = model(meta_ids(2, 5), meta_ids(2, 4), targets=meta_ids(2, 4))
    assert out.logits.device == out.loss.device == META
    assert out.logits.shape == (2, 4, 13)


# ---- bert (chapter 05_bert) -------------------------------------------------------------

@pytest.mark.parametrize("generator", [None, "cpu"])
def test_bert_mask_tokens_returns_tensors_on_the_input_device(generator):
    # the random numbers come from a CPU generator (the same masks on every device), the
    # outputs must still be on the input's device
    gen = torch.Generator().manual_seed(0) if generator == "cpu" else None
    ids = meta_ids(3, 7)
    inputs, labels = mask_tokens(ids, [0, 1, 2, 3, 4], vocab_size=20, mask_id=4, generator=gen)
    assert inputs.device == META and labels.device == META
    assert inputs.shape == labels.shape == ids.shape
    assert inputs.dtype == labels.dtype == torch.long


def _tiny_bert() -> Bert:
    return Bert(BertConfig(vocab_size=20, d_model=16, n_layers=1, n_heads=2, d_ff=32, max_len=8)).to(META)


def _run_bert_on_meta(model: Bert):
    ids = meta_ids(2, 5)
    return model(ids, targets=ids, nsp_labels=ids[:, 0], labels=ids[:, 0],
                 heads=("mlm", "nsp", "cls"), need_weights=True)


def test_bert_own_code_runs_on_meta():
    # bert.py alone (input checks, default segments and mask, embeddings, heads, losses): the
    # encoder is swapped for one that passes its input through, so a failure here is in bert.py
    class PassThrough(torch.nn.Module):
        def forward(self, x, key_mask=None, need_weights=False):
            assert key_mask.device == META
            return x, []

    model = _tiny_bert()
    model.encoder = PassThrough()
    out = _run_bert_on_meta(model)
    for t in (out.last_hidden_state, out.pooler_output, out.logits, out.nsp_logits, out.class_logits, out.loss):
        assert t.device == META
    assert out.logits.shape == (2, 5, 20)


def test_bert_forward_runs_on_meta():
    # the whole model, transformer.Encoder and attention included
    out = _run_bert_on_meta(_tiny_bert())
    for t in (out.last_hidden_state, out.pooler_output, out.logits, out.nsp_logits, out.class_logits, out.loss,
              *out.attentions):
        assert t.device == META
    assert out.attentions[0].shape == (2, 2, 5, 5)


# ---- data (chapter 06_gpt) --------------------------------------------------

def test_data_pad_sequences_keeps_the_device_of_tensor_rows():
    ids, lengths = pad_sequences([meta_ids(3), meta_ids(5), meta_ids(1)], pad_value=0)
    assert ids.device == META and lengths.device == META
    assert ids.shape == (3, 5) and lengths.shape == (3,)
    # lists of ints have no device: they give CPU tensors
    assert pad_sequences([[1, 2], [3]], 0)[0].device == torch.device("cpu")
    with pytest.raises(ValueError, match="one device"):
        pad_sequences([meta_ids(2), torch.tensor([1, 2])], 0)


def test_data_sequence_collate_keeps_the_device():
    ds = SequenceDataset([[1, 2, 3], [4, 5]], pad_id=0, first_target=[2, 1])
    x, y = ds.collate([(meta_ids(4), 2), (meta_ids(3), 1)])
    assert x.device == META and y.device == META
    assert x.shape == y.shape == (2, 3)


# ---- fewshot (chapter 06_gpt) -------------------------------------------------------------

def test_fewshot_accuracy_gives_the_model_ids_on_its_device():
    words = vocabulary()
    model = MetaModel(vocab=len(words))
    acc = accuracy(model, few_shot_prompts(20, seed=0), words.index, bos_id=0)
    assert 0.0 <= acc <= 1.0
    assert model.seen and set(model.seen) == {META}


def test_fewshot_induction_scores_give_the_model_ids_on_its_device():
    model = MetaModel(layers=3, heads=2)
    scores = induction_scores(model, list(range(2, 50)), length=6, n=4, bos_id=1)
    assert model.seen == [META]
    assert scores.shape == (3, 2) and scores.device == torch.device("cpu")  # a table to print


# ---- exercises (chapters 03_attention to 06_gpt) -------------------------------------------

@pytest.mark.parametrize("check, answer", [
    (exercises.check_causal_mask, lambda n: torch.ones(n, n, dtype=torch.bool, device=META).tril()),
    (exercises.check_positional_encoding, lambda max_len, d: torch.zeros(max_len, d, device=META)),
    (exercises.check_label_smoothing, lambda target, n, eps: torch.zeros(len(target), n, device=META)),
    (exercises.check_top_k, lambda logits, k: logits.to(META)),
    (exercises.check_top_p, lambda logits, p: logits.to(META)),
    (exercises.check_attention, lambda q, k, v, mask=None: (torch.zeros(4, 3, device=META),
                                                            torch.zeros(4, 5, device=META))),
    (exercises.check_bert_input, lambda tok, seg, pos, ids, segments: torch.zeros(6, 4, device=META)),
])
def test_exercises_move_the_answer_to_the_cpu(check, answer, capsys):
    # A reader with a GPU may build an answer there (device=device). The checks compare with
    # CPU references, so they move the answer to the CPU first: for a meta answer that move
    # fails, and the check must say so rather than raise.
    assert check(answer) is False
    assert "meta" in capsys.readouterr().out


def test_exercises_head_score_reports_an_answer_without_a_value(capsys):
    # float() reads a CUDA or MPS number; a meta one has none, which is reported, not raised
    assert exercises.check_head_score(lambda att, links, exclude: torch.tensor(0.75, device=META)) is False
    assert "return one number" in capsys.readouterr().out


# ---- attention (chapter 03) --------------------------------------------------------------
from lmbook_utils.attention import MultiHeadAttention, causal_mask  # noqa: E402
from lmbook_utils.decoding import generate  # noqa: E402
from lmbook_utils.gpt import GPT, GPTConfig  # noqa: E402
from lmbook_utils.transformer import Transformer, TransformerConfig  # noqa: E402


@pytest.mark.parametrize("kernel", ["auto", "sdpa", "explicit"])
@pytest.mark.parametrize("need_weights", [False, True])
def test_attention_runs_on_meta(kernel, need_weights):
    mha = MultiHeadAttention(16, 4, kernel=kernel).to(META)
    x = torch.zeros(2, 5, 16, device=META)
    keep = torch.ones(2, 5, dtype=torch.bool, device=META)
    for kwargs in ({"is_causal": True}, {"key_mask": keep},
                   {"mask": causal_mask(5, device=META), "key_mask": keep}):
        out, w = mha(x, need_weights=need_weights, **kwargs)
        assert out.device == META and (w is None or w.device == META)
    out, _ = mha(x, torch.zeros(2, 7, 16, device=META), need_weights=need_weights)  # cross-attention
    assert out.shape == (2, 5, 16) and out.device == META


# ---- gpt (chapter 06) --------------------------------------------------------------------
def test_gpt_forward_runs_on_meta():
    model = GPT(GPTConfig(vocab_size=20, d_model=16, n_layers=2, n_heads=2, max_len=12)).to(META)
    out = model(meta_ids(3, 7), meta_ids(3, 7))
    assert out.logits.device == out.loss.device == META
    keep = torch.ones(3, 7, dtype=torch.bool, device=META)  # the left-padding path
    assert model(meta_ids(3, 7), attention_mask=keep).logits.device == META


def test_generate_keeps_the_prompt_device_and_draws_the_same_on_every_device():
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=20, d_model=16, n_layers=1, n_heads=2, max_len=12))
    prompt = torch.zeros(2, 1, dtype=torch.long)
    a = generate(model, prompt, 5, do_sample=True, seed=3)
    assert a.device == prompt.device
    # A seeded draw uses a CPU generator whatever the device, so a GPU reader gets the book's text:
    # the same generator stream as a CPU torch.Generator seeded alike.
    b = generate(model, prompt, 5, do_sample=True, seed=3)
    assert torch.equal(a, b)


# ---- transformer (chapter 04) -------------------------------------------------------------
def test_transformer_forward_runs_on_meta():
    model = Transformer(TransformerConfig(11, 13, d_model=16, n_heads=2, n_layers=1, d_ff=32, max_len=10)).to(META)
    out = model(meta_ids(2, 6), meta_ids(2, 5), meta_ids(2, 5))
    assert out.logits.device == out.loss.device == META


# ---- xlnet --------------------------------------------------------------------------------
from lmbook_utils.xlnet import XLNet, XLNetConfig, sample_permutation  # noqa: E402
from lmbook_utils.xlnet import generate as xlnet_generate  # noqa: E402


def test_xlnet_runs_on_meta_with_both_streams_and_memory():
    model = XLNet(XLNetConfig.tiny(vocab_size=20, mem_len=4)).to(META)
    ids = meta_ids(2, 7)
    keep = torch.ones(2, 7, dtype=torch.bool, device=META)
    # the permutation sampler draws its order on the CPU generator and builds the masks on the
    # inputs' device; values are not needed on meta
    perm = sample_permutation(ids, k=3, attention_mask=keep, generator=torch.Generator().manual_seed(0))
    assert perm.perm_mask.device == perm.target_mapping.device == perm.targets.device == META
    seg = torch.zeros(2, 7, dtype=torch.long, device=META)
    out = model(ids, attention_mask=keep, token_type_ids=seg, perm_mask=perm.perm_mask,
                target_mapping=perm.target_mapping, targets=perm.targets, use_mems=True)
    assert out.logits.device == out.loss.device == META
    assert all(m.device == META for m in out.mems)
    again = model(meta_ids(2, 5), mems=out.mems)
    assert again.logits.device == META


@pytest.mark.parametrize("use_mems", [False, True])
def test_xlnet_generate_keeps_the_input_device(use_mems):
    # argmax and torch.multinomial have meta kernels (shapes only), so greedy decoding, the memory
    # path (dummy token, masks, sliced memory) and sampling from torch's global generator run on
    # meta. A torch.Generator() draws on the CPU, which needs values (a meta tensor cannot be
    # copied out): that path is tested on the CPU in test_xlnet.py.
    model = XLNet(XLNetConfig.tiny(vocab_size=20, mem_len=4)).to(META)
    ids = meta_ids(2, 4)
    for do_sample in (False, True):
        out = xlnet_generate(model, ids, 3, use_mems=use_mems, do_sample=do_sample)
        assert out.device == META and out.shape == (2, 7) and out.dtype == torch.long


# ---- electra (chapter 08) ----------------------------------------------------------------
# ElectraPretraining and ReplacedMLMPretraining are not run on meta: their target checks and
# the generator's samples read values (bool(...) of a check, boolean indexing). Their parts are
# tested here: the generator and the MLM are ElectraGenerators, the samples gumbel_sample's.
def test_electra_models_run_on_meta():
    from lmbook_utils.electra import ElectraClassifier, ElectraConfig, ElectraDiscriminator, ElectraForQA, ElectraGenerator

    cfg = ElectraConfig.tiny(vocab_size=20)
    ids, keep = meta_ids(2, 6), torch.ones(2, 6, dtype=torch.bool, device=META)
    gen = ElectraGenerator(cfg).to(META)
    assert gen(ids, attention_mask=keep, targets=meta_ids(2, 6)).loss.device == META
    disc = ElectraDiscriminator(cfg).to(META)
    out = disc(ids, attention_mask=keep, targets=torch.zeros(2, 6, dtype=torch.bool, device=META))
    assert out.logits.shape == (2, 6) and out.logits.device == out.loss.device == META
    assert ElectraClassifier(ElectraDiscriminator(cfg), 3).to(META)(ids, attention_mask=keep,
                                                                     labels=meta_ids(2)).loss.device == META
    qa = ElectraForQA(ElectraDiscriminator(cfg)).to(META)(ids, attention_mask=keep)
    assert qa.start_logits.device == qa.end_logits.device == META


def test_electra_gumbel_sample_draws_on_the_generator_device_and_returns_on_the_logits_device():
    from lmbook_utils.electra import gumbel_sample

    assert gumbel_sample(torch.zeros(4, 9, device=META), torch.Generator().manual_seed(0)).device == META
    # the noise is drawn on the generator's device (the CPU), so a seed means one sample everywhere
    logits = torch.randn(4, 9, generator=torch.Generator().manual_seed(1))
    assert torch.equal(gumbel_sample(logits, torch.Generator().manual_seed(0)),
                       gumbel_sample(logits.clone(), torch.Generator().manual_seed(0)))

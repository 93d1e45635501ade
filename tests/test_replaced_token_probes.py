from __future__ import annotations

import numpy as np
import pytest
import torch

from lmbook_utils import probes
from lmbook_utils import replaced_token_probes as rtp
from lmbook_utils import toyworld as tw
from lmbook_utils.electra import ElectraConfig, ElectraPretraining
from lmbook_utils.tokenizers import WordPieceTokenizer


@pytest.fixture(scope="module")
def setup():
    corpus = tw.generate_corpus(n_chars=60_000, seed=0)
    tok = WordPieceTokenizer.train(corpus.text.splitlines(), vocab_size=400)
    pairs = [(e.first, e.second) for e in tw.nsp_examples(300, seed=1, story_start=True) if e.is_next][:60]
    vocab_words = sorted({w for s in corpus.tokens() for w in s} & set(tok.vocab()))
    torch.manual_seed(0)
    d = ElectraConfig(vocab_size=tok.vocab_size, embedding_size=16, d_model=16, n_layers=1, n_heads=2, d_ff=32,
                      max_len=64, dropout=0.0, pad_id=tok.pad_id)
    g = ElectraConfig(vocab_size=tok.vocab_size, embedding_size=16, d_model=8, n_layers=1, n_heads=2, d_ff=16,
                      max_len=64, dropout=0.0, pad_id=tok.pad_id)
    return tok, pairs, vocab_words, ElectraPretraining(g, d).eval()


def test_rows_follow_the_optimum_formula(setup):
    tok, pairs, vocab_words, model = setup
    cases = rtp.against_the_optimum(model, tok, pairs, vocab_words, n=60)
    assert cases.shape[1] == len(rtp.COLUMNS) and len(cases) >= 10
    replaced, pd, pg, d_star, p_disc = cases.T
    m = 0.15
    by_hand = m * pg * (1 - pd) / ((1 - m) * pd + m * pg)          # section 4.3 of chapter 08
    np.testing.assert_allclose(d_star, by_hand, rtol=1e-5, atol=1e-7)
    assert set(np.unique(replaced)) <= {0.0, 1.0}
    assert ((pd >= 0) & (pd <= 1) & (pg > 0) & (pg <= 1) & (p_disc > 0) & (p_disc < 1)).all()
    # a shown token equal to the original is not replaced, and the grammar allows the original
    assert (pd[replaced == 0] > 0).all()


def test_the_cache_changes_nothing_and_fills(setup):
    tok, pairs, vocab_words, model = setup
    cache = {}
    first = rtp.against_the_optimum(model, tok, pairs, vocab_words, n=60, posteriors=cache)
    assert len(cache) == len(first)
    again = rtp.against_the_optimum(model, tok, pairs, vocab_words, n=60, posteriors=cache)
    plain = rtp.against_the_optimum(model, tok, pairs, vocab_words, n=60)
    np.testing.assert_array_equal(first, again)
    np.testing.assert_array_equal(first, plain)
    # each cached posterior is the grammar's own
    (words, j), post = next(iter(cache.items()))
    assert post == probes.hidden_word_posterior(list(words), j, vocab_words)


def test_probabilities_of_a_changed_pair(setup):
    tok, _, vocab_words, model = setup
    a, b = "Alice saw a small dog.", "She was happy."
    ids, seg = rtp.pair_tensors(tok, a, b, 4, "cat")
    pieces = [tok.id_to_token(i) for i in ids[0].tolist()]
    assert pieces[5] == "cat" and pieces[0] == "[CLS]" and seg[0].tolist().index(1) == 8
    got_pieces, p = rtp.replaced_probabilities(model, tok, a, b, 4, "cat")
    with torch.no_grad():
        direct = model.discriminator(ids, seg).logits[0].sigmoid().numpy()
    assert got_pieces == pieces
    np.testing.assert_array_equal(p, direct)
    # "he" for Alice's "she" is impossible in the grammar: p_data = 0, so D* = 1
    assert rtp.optimum_for_change(model, tok, a, b, 6, "he", vocab_words) == pytest.approx(1.0)
    # the original word is not always replaced: D* < 1
    assert rtp.optimum_for_change(model, tok, a, b, 6, "she", vocab_words) < 1.0


def test_summarize_by_hand():
    # replaced, p_data, p_gen, d_star, p_disc
    rows = np.array([[1, 0.0, 0.5, 0.9, 0.6],
                     [1, 0.1, 0.5, 0.7, 0.2],
                     [0, 0.5, 0.1, 0.1, 0.3],
                     [0, 0.6, 0.1, 0.05, 0.1]])
    s = rtp.summarize(rows)
    assert s["n"] == 4 and s["replaced"] == 0.5 and s["impossible"] == 0.5
    assert s["d_star_replaced"] == pytest.approx(0.8) and s["disc_original"] == pytest.approx(0.2)
    assert s["auc_d_star"] == 1.0
    assert s["auc_disc"] == pytest.approx(0.75)     # of the 4 (replaced, original) pairs, 0.2 < 0.3 is the one wrong


def test_bad_input(setup):
    tok, pairs, vocab_words, model = setup
    with pytest.raises(TypeError, match="model"):
        rtp.against_the_optimum(model.discriminator, tok, pairs, vocab_words)
    with pytest.raises(ValueError, match="n must"):
        rtp.against_the_optimum(model, tok, pairs, vocab_words, n=0)
    with pytest.raises(ValueError, match="where"):
        rtp.pair_tensors(tok, "Alice saw a small dog.", "She was happy.", 11, "cat")
    with pytest.raises(ValueError, match="new_word"):
        rtp.pair_tensors(tok, "Alice saw a small dog.", "She was happy.", 4, None)
    with pytest.raises(ValueError, match="new_word"):
        rtp.optimum_for_change(model, tok, "Alice saw a small dog.", "She was happy.", 4, "zebra", vocab_words)
    with pytest.raises(ValueError, match="both replaced and original"):
        rtp.summarize(np.array([[1, 0.0, 0.5, 0.9, 0.6]]))
    with pytest.raises(ValueError, match="shape"):
        rtp.summarize(np.zeros((3, 4)))


def test_probability_row_html():
    from lmbook_utils.html_views import red_shade

    out = rtp.probability_row_html(["[CLS]", "a<b"], [0.0, 1.0], caption="x & y")
    assert out.startswith("<p>x &amp; y</p><table><tr>") and out.count("<td") == 2
    assert "a&lt;b" in out and "<br>1.00</td>" in out and red_shade(1.0) in out
    assert "<p>" not in rtp.probability_row_html(["a"], [0.5])
    with pytest.raises(ValueError, match="same length"):
        rtp.probability_row_html(["a", "b"], [0.5])

"""ELECTRA's discriminator set next to the best possible one, where the toy world knows p_data.

Introduced in chapter 08_electra. A real corpus has no p_data, so nobody can say how far a
trained replaced-token detector is from the optimum. The toy world's exact hidden-word
posterior (`probes.hidden_word_posterior`) gives p_data(w | the rest), the trained generator
gives p_gen, and `electra.optimal_replaced_probability` turns the two into the optimal
P(replaced) of one corrupted position. The functions here mask one word of a two-sentence
opening, let the model's generator fill it, and score the result both ways.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from . import probes
from .electra import optimal_replaced_probability
from .toyworld import detokenize_en, tokenize_en

# the columns of against_the_optimum's rows
COLUMNS = ("replaced", "p_data", "p_gen", "d_star", "p_disc")


def _device(model: torch.nn.Module) -> torch.device:
    return next(model.parameters()).device


def _check_model(model) -> None:
    if not (hasattr(model, "generator") and hasattr(model, "discriminator")):
        raise TypeError("model must have a .generator and a .discriminator (electra.ElectraPretraining), "
                        f"got {type(model).__name__}")


def _whole_word_position(tokenizer, words_a: list[str], words_b: list[str], where: int) -> int:
    """Token position of word `where` in [CLS] a [SEP] b [SEP], which needs one piece per word."""
    ids, _ = tokenizer.encode_pair(detokenize_en(words_a), detokenize_en(words_b))
    if len(ids) != len(words_a) + len(words_b) + 3:
        raise ValueError(f"every word must be one token of the tokenizer's vocabulary, got "
                         f"{detokenize_en(words_a + words_b)!r}")
    if isinstance(where, bool) or not isinstance(where, int) or not 0 <= where < len(words_a) + len(words_b):
        raise ValueError(f"where must be a word index, 0 to {len(words_a) + len(words_b) - 1}, got {where!r}")
    return where + 1 if where < len(words_a) else where + 2


def pair_tensors(tokenizer, text_a: str, text_b: str, where: int | None = None, new_word: str | None = None,
                 device: torch.device | str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """(ids, segment ids), each (1, T), of the pair with word `where` (of a's words, then b's)
    changed to `new_word`; unchanged when `where` is None."""
    words = tokenize_en(text_a) + tokenize_en(text_b)
    n_a = len(tokenize_en(text_a))
    if where is not None:
        if isinstance(where, bool) or not isinstance(where, int) or not 0 <= where < len(words):
            raise ValueError(f"where must be a word index, 0 to {len(words) - 1}, got {where!r}")
        if not isinstance(new_word, str) or not new_word:
            raise ValueError(f"new_word must be a word (str) when where is given, got {new_word!r}")
        words[where] = new_word
    ids, seg = tokenizer.encode_pair(detokenize_en(words[:n_a]), detokenize_en(words[n_a:]))
    return torch.tensor([ids], device=device), torch.tensor([seg], device=device)


@torch.no_grad()
def replaced_probabilities(model, tokenizer, text_a: str, text_b: str, where: int | None = None,
                           new_word: str | None = None) -> tuple[list[str], np.ndarray]:
    """(pieces, the discriminator's P(replaced) per token) of the pair with word `where` changed."""
    _check_model(model)
    ids, seg = pair_tensors(tokenizer, text_a, text_b, where, new_word, _device(model))
    p = model.discriminator(ids, seg).logits[0].sigmoid().cpu().numpy()
    return [tokenizer.id_to_token(i) for i in ids[0].tolist()], p


@torch.no_grad()
def optimum_for_change(model, tokenizer, text_a: str, text_b: str, where: int, new_word: str,
                       vocab_words: Sequence[str], mask_prob: float = 0.15) -> float:
    """The optimal P(replaced) for `new_word` shown at word `where` of the pair: the grammar's
    p_data, the model's generator's p_gen with that position masked."""
    _check_model(model)
    words_a, words_b = tokenize_en(text_a), tokenize_en(text_b)
    pos = _whole_word_position(tokenizer, words_a, words_b, where)
    if new_word not in vocab_words:
        raise ValueError(f"new_word must be one of vocab_words (the grammar scores only those), got {new_word!r}")
    ids, seg = pair_tensors(tokenizer, text_a, text_b, device=_device(model))
    ids[0, pos] = tokenizer.mask_id
    p_gen = model.generator(ids, seg).logits[0, pos].softmax(-1)[tokenizer.token_to_id(new_word)].cpu()
    p_data = probes.hidden_word_posterior(words_a + words_b, where, list(vocab_words))[list(vocab_words).index(new_word)]
    return float(optimal_replaced_probability(torch.tensor([p_data]), p_gen[None], mask_prob))


@torch.no_grad()
def against_the_optimum(model, tokenizer, pairs: Sequence[tuple[str, str]], vocab_words: Sequence[str],
                        n: int = 300, seed: int = 5, mask_prob: float = 0.15,
                        posteriors: dict | None = None) -> np.ndarray:
    """One word of each of the first `n` openings (a, b) masked and filled by the model's
    generator: rows of `COLUMNS` (replaced?, p_data of the shown token, p_gen, the optimal D*,
    the discriminator's P(replaced)).

    Openings with a word split into pieces are skipped, and so are samples that are a piece
    (the grammar has no probability for them). The word masked in each opening depends only on
    `seed`, so two models are scored at the same positions; `posteriors`, a dict kept between
    calls, saves the grammar's posterior of each (opening, position) for the next model.
    """
    _check_model(model)
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be an int >= 1, got {n!r}")
    if not vocab_words:
        raise ValueError("vocab_words must list the grammar's words that are whole tokens")
    vocab_words = list(vocab_words)
    known = set(vocab_words)
    device = _device(model)
    rng, sampler, cases = np.random.default_rng(seed), torch.Generator().manual_seed(seed), []
    cache = {} if posteriors is None else posteriors
    for a, b in pairs[:n]:
        words = tokenize_en(a) + tokenize_en(b)
        ids, seg = tokenizer.encode_pair(a, b)
        if len(ids) != len(words) + 3:               # [CLS] a [SEP] b [SEP], one token per word
            continue
        j = int(rng.integers(len(words)))
        pos = j + 1 if j < len(tokenize_en(a)) else j + 2
        x, s = torch.tensor([ids], device=device), torch.tensor([seg], device=device)
        masked = x.clone()
        masked[0, pos] = tokenizer.mask_id
        p_gen = model.generator(masked, s).logits[0, pos].softmax(-1).cpu()
        w = int(torch.multinomial(p_gen, 1, generator=sampler))
        shown = x.clone()
        shown[0, pos] = w
        p_disc = float(model.discriminator(shown, s).logits[0, pos].sigmoid())
        if tokenizer.id_to_token(w) not in known:     # a subword piece
            continue
        key = (tuple(words), j)
        if key not in cache:
            cache[key] = probes.hidden_word_posterior(words, j, vocab_words)
        pd = cache[key][vocab_words.index(tokenizer.id_to_token(w))]
        d_star = float(optimal_replaced_probability(torch.tensor([pd]), p_gen[w:w + 1], mask_prob))
        cases.append((w != ids[pos], pd, float(p_gen[w]), d_star, p_disc))
    return np.array(cases, dtype=float).reshape(-1, len(COLUMNS))


def summarize(cases: np.ndarray) -> dict[str, float]:
    """What against_the_optimum's rows say: how many, the share replaced, the share of those the
    grammar calls impossible, the mean P(replaced) of D* and of the discriminator on replaced and
    on original tokens, and each one's AUC for ranking replaced above original."""
    from sklearn.metrics import roc_auc_score

    cases = np.asarray(cases, dtype=float)
    if cases.ndim != 2 or cases.shape[1] != len(COLUMNS):
        raise ValueError(f"cases must be against_the_optimum's rows, shape (n, {len(COLUMNS)}), got {cases.shape}")
    rep = cases[:, 0] == 1
    if rep.all() or not rep.any():
        raise ValueError("cases must hold both replaced and original tokens to rank one above the other")
    return {"n": float(len(cases)), "replaced": float(rep.mean()), "impossible": float((cases[rep, 1] == 0).mean()),
            "d_star_replaced": float(cases[rep, 3].mean()), "d_star_original": float(cases[~rep, 3].mean()),
            "disc_replaced": float(cases[rep, 4].mean()), "disc_original": float(cases[~rep, 4].mean()),
            "auc_d_star": float(roc_auc_score(rep, cases[:, 3])), "auc_disc": float(roc_auc_score(rep, cases[:, 4]))}


def probability_row_html(pieces: Sequence[str], probabilities: Sequence[float], caption: str | None = None) -> str:
    """One HTML table row: each token over its P(replaced), shaded by `html_views.red_shade`
    (contrast-checked), for a widget and for its kernel-free copy in the static book."""
    import html

    from .html_views import red_shade

    if len(pieces) != len(probabilities):
        raise ValueError(f"pieces and probabilities must have the same length, got {len(pieces)} and "
                         f"{len(probabilities)}")
    cells = "".join(f"<td style='{red_shade(float(v))}; padding: 4px'><code style='color: inherit'>"
                    f"{html.escape(t)}</code><br>{float(v):.2f}</td>" for t, v in zip(pieces, probabilities))
    head = f"<p>{html.escape(caption)}</p>" if caption else ""
    return f"{head}<table><tr>{cells}</tr></table>"

"""Probes: what a trained model knows, measured against what the toy-world grammar knows.

Introduced in chapter 05_bert. The grammar knows the exact answer to many questions about a
text: which noun a determiner introduces, which verb an object belongs to, whom a pronoun
names (`word_relations`), the distribution of a hidden word (`hidden_word_posterior`), which
gender a pronoun must have. These functions put the same questions to a model: does an
attention head track a relation (`head_accuracy`, Clark et al. 2019, and `relation_table`
for a BERT), does a BERT prefer the right gender of a hidden pronoun (`gender_accuracy`), does
a head copy like an induction head (`induction_scores`, Olsson et al. 2022; chapter 06_gpt).
The data they run on is made elsewhere (`toyworld`, `fewshot.repeated_sequences`).
"""

from __future__ import annotations

import math
from collections import Counter
from typing import NamedTuple

import torch

from .toyworld import ANIMALS, ATTITUDES, PLACES, THINGS, detokenize_en, story_log_prob, tokenize_en
from .toyworld.views import _FLIP, _GENDER, _PRONOUN_GENDER

__all__ = ["word_relations", "hidden_word_posterior", "head_accuracy", "RelationRow", "relation_table",
           "gender_accuracy", "induction_scores", "determiner_noun_cases", "forbidden_determiner_share"]


# ---- what the grammar knows --------------------------------------------------------------------
_DETERMINERS = ("a", "the")
_NOUNS = frozenset([n for n, _, _ in ANIMALS] + [n for v in THINGS.values() for n, _, _ in v]
                   + [p[0].split()[-1] for p in PLACES])
# verbs whose first noun phrase after them is their direct object ("gave" has two objects: left out)
_OBJECT_VERBS = frozenset(["saw", "ate", "read", "found", "lost"] + [a for a, _, _ in ATTITUDES])


def word_relations(tokens: list[str]) -> list[tuple[str, int, int]]:
    """(relation, query index, target index) for three relations a head might track in toy-world text.

    Introduced in chapter 05_bert. "determiner → noun": a/the to the noun it introduces;
    "object → verb": the head word of a direct object to its verb; "pronoun → antecedent":
    he/she/him/her to the name it refers to (read off the text exactly, as in
    `toyworld.coreference_examples`). `tokens` are `tokenize_en` words; sentences end with ".".
    """
    if not isinstance(tokens, (list, tuple)) or not all(isinstance(t, str) for t in tokens):
        raise ValueError(f"tokens must be a list of word strings (tokenize_en), got {type(tokens).__name__}")
    out, names, verb = [], {}, None
    for i, tok in enumerate(tokens):
        if tok == ".":
            verb = None
        elif tok in _DETERMINERS:
            noun = next((j for j in range(i + 1, min(i + 3, len(tokens))) if tokens[j] in _NOUNS), None)
            if noun is not None:
                out.append(("determiner → noun", i, noun))
        elif tok in _OBJECT_VERBS and verb is None:
            verb = i
        elif verb is not None and verb >= 0 and (tok in _NOUNS or tok in _GENDER or tok in ("him", "her", "it")):
            out.append(("object → verb", i, verb))
            verb = -1  # one direct object per verb
        if tok in _PRONOUN_GENDER:
            match = [j for w, j in names.items() if _GENDER[w] == _PRONOUN_GENDER[tok]]
            if len(match) == 1:
                out.append(("pronoun → antecedent", i, match[0]))
        elif tok in _GENDER:
            names[tok] = i
    return out


def hidden_word_posterior(tokens: list[str], position: int, words: list[str]) -> list[float]:
    """p(w | every other token) for each w in `words`, exactly, for the word at `position`.

    Introduced in chapter 05_bert: the best possible answer to a masked-word question, and its
    entropy the floor of a masked language model's loss. `tokens` (`tokenize_en` words) are a
    whole story or its opening sentences; each candidate is put into the gap and the story scored
    with `toyworld.story_log_prob`, whose normalization over `words` is the conditional. A gap that no
    candidate can fill is an error, not a guess.
    """
    if not isinstance(tokens, (list, tuple)) or not tokens or not all(isinstance(t, str) for t in tokens):
        raise ValueError(f"tokens must be a non-empty list of word strings (tokenize_en), got {tokens!r:.80}")
    if isinstance(position, bool) or not isinstance(position, int) or not 0 <= position < len(tokens):
        raise ValueError(f"position must be an index into tokens, 0 to {len(tokens) - 1}, got {position!r}")
    if not isinstance(words, (list, tuple)) or not words or not all(isinstance(w, str) for w in words):
        raise ValueError(f"words must be a non-empty list of candidate word strings, got {words!r:.80}")
    logps = [story_log_prob(detokenize_en([*tokens[:position], w, *tokens[position + 1:]])) for w in words]
    best = max(logps)
    if best == -math.inf:
        raise ValueError(f"no word in words makes a possible story with position {position} filled in: "
                         f"{detokenize_en(tokens)!r} (the opening sentences of one story?)")
    ps = [math.exp(lp - best) for lp in logps]
    total = sum(ps)
    return [p / total for p in ps]


# ---- attention heads -------------------------------------------------------------------------
def head_accuracy(examples, exclude=None) -> torch.Tensor:
    """(layers, heads): how often each head's strongest attention from a query lands on its target.

    Introduced in chapter 05_bert. This is Clark et al.'s (2019, "What does BERT look at?",
    BlackboxNLP) test of whether a head tracks a relation: `examples` is a list of
    (attention (layers, heads, T, T), links [(query, target), ...]); the score pools all links.
    `exclude` gives, per example, key positions never counted as the argmax (e.g. [CLS] and
    [SEP], which many heads use as a resting place)."""
    examples = list(examples)
    if exclude is not None and len(exclude) != len(examples):
        raise ValueError(f"exclude must give one list of positions per example ({len(examples)}), "
                         f"got {len(exclude)}")
    hits, total = None, 0
    for k, (att, links) in enumerate(examples):
        if not isinstance(att, torch.Tensor) or att.dim() != 4 or att.shape[-1] != att.shape[-2]:
            got = tuple(att.shape) if isinstance(att, torch.Tensor) else type(att).__name__
            raise ValueError(f"attention must be a (layers, heads, T, T) tensor, got {got} in example {k}")
        n = att.shape[-1]
        att = att.detach().float()
        if exclude is not None and len(exclude[k]):
            att = att.clone()
            att[..., list(exclude[k])] = -1.0
        for q, t in links:
            if not (0 <= q < n and 0 <= t < n):
                raise ValueError(f"link ({q}, {t}) in example {k} points outside the {n} positions")
            hit = (att[:, :, q].argmax(-1) == t).float()
            hits = hit if hits is None else hits + hit
            total += 1
    if total == 0:
        raise ValueError("examples hold no links: nothing to score")
    return hits / total


class RelationRow(NamedTuple):
    """One row of `relation_table`: a relation's best head beside its best fixed offset.

    Introduced in chapter 05_bert. Layers and heads are counted from 0 (add 1 to print them
    the book's way)."""
    links: int               # (query, target) links of this relation in the pairs
    layer: int               # the best head: its layer ...
    head: int                # ... and its index in that layer
    accuracy: float          # share of links where that head's strongest attention is on the target
    offset: int              # the most common distance target - query, in words
    offset_accuracy: float   # share of links at that distance: "always attend `offset` away"


def _model_device(model: object) -> torch.device:
    if not isinstance(model, torch.nn.Module):
        raise ValueError(f"model must be a torch.nn.Module (a Bert), got {type(model).__name__}")
    param = next(model.parameters(), None)
    if param is None:
        raise ValueError("model must have parameters: their device is where the inputs go")
    return param.device


def _check_tokenizer(tokenizer: object, needs: tuple[str, ...]) -> None:
    missing = [name for name in needs if not hasattr(tokenizer, name)]
    if missing:
        raise ValueError(f"tokenizer must be a WordPieceTokenizer (with {', '.join(needs)}), "
                         f"got {type(tokenizer).__name__} without {', '.join(missing)}")


def _check_pairs(pairs: object, labeled: bool) -> list[tuple]:
    shape = "(A, B, label) triples, label 0 when B follows A" if labeled else "(A, B) text pairs"
    if isinstance(pairs, (str, bytes)) or not isinstance(pairs, (list, tuple)) or not pairs:
        raise ValueError(f"pairs must be a non-empty list of {shape}, got {pairs!r:.80}")
    for k, pair in enumerate(pairs):
        ok = (isinstance(pair, (list, tuple)) and len(pair) in ((3,) if labeled else (2, 3))
              and all(isinstance(text, str) for text in pair[:2]))
        if not ok or (labeled and (isinstance(pair[2], bool) or pair[2] not in (0, 1))):
            raise ValueError(f"pairs must be a non-empty list of {shape}; pair {k} is {pair!r:.80}")
    return list(pairs)


@torch.no_grad()
def relation_table(model: torch.nn.Module, tokenizer, pairs) -> dict[str, RelationRow]:
    """For each relation of `word_relations`: the head that tracks it best, and the best fixed offset.

    Introduced in chapter 05_bert: Clark et al.'s test, run on a BERT over toy-world sentence
    pairs. Each pair (A, B) is encoded as [CLS] A [SEP] B [SEP] (`tokenizer.encode_pair`) and
    its attention maps are read (`model(ids, segments, need_weights=True).attentions`); each
    relation `word_relations` finds in the words of A then B is a link (query, target) scored
    by `head_accuracy`, with [CLS] and [SEP] never counted as a head's strongest key. A
    `RelationRow` holds the number of links, the head with the highest accuracy (the first
    one, layer by layer, on a tie) and that accuracy, and the most common distance
    target - query (the first seen on a tie) with the share of links at that distance: what
    "always attend that far away" scores, the baseline a head must beat. Rows come in the
    order their relations first occur.

    `pairs`: (A, B) or (A, B, label), the label ignored. Pass pairs whose B follows A (label 0
    in Hugging Face's convention), so that B's pronouns name people in A. Every word must be
    one token of `tokenizer` (a WordPiece vocabulary trained on toy-world text keeps them
    whole). The model runs one pair at a time in eval mode and is left in the mode it was in.
    """
    pairs = _check_pairs(pairs, labeled=False)
    device = _model_device(model)
    _check_tokenizer(tokenizer, ("encode_pair", "id_to_token"))
    examples: dict[str, list] = {}
    was_training = model.training
    model.eval()
    try:
        for a, b, *_ in pairs:
            ids, seg = tokenizer.encode_pair(a, b)
            pieces = [tokenizer.id_to_token(i) for i in ids]
            at = [k for k, p in enumerate(pieces) if p not in ("[CLS]", "[SEP]")]  # piece index of each word
            words = tokenize_en(a) + tokenize_en(b)
            if [pieces[k] for k in at] != words:
                raise ValueError(f"tokenizer must keep every toy-world word whole (one token each): "
                                 f"pairs hold {a!r} / {b!r}, tokenized as {pieces}")
            att = torch.stack(model(torch.tensor([ids], device=device), torch.tensor([seg], device=device),
                                    need_weights=True).attentions)[:, 0]   # (layers, heads, T, T)
            skip = [0] + [k for k in range(len(ids)) if k not in at]        # [CLS] and [SEP]
            for rel, q, t in word_relations(words):
                examples.setdefault(rel, []).append((att, [(at[q], at[t])], skip))
    finally:
        model.train(was_training)
    if not examples:
        raise ValueError("pairs hold no relation that word_relations finds: nothing to score")
    rows = {}
    for rel, exs in examples.items():
        acc = head_accuracy([(att, links) for att, links, _ in exs], exclude=[skip for *_, skip in exs])
        offsets = Counter(t - q for _, links, _ in exs for q, t in links)
        off, hits = offsets.most_common(1)[0]
        layer, head = divmod(int(acc.argmax()), acc.shape[1])
        rows[rel] = RelationRow(len(exs), layer, head, float(acc.max()), off, hits / len(exs))
    return rows


# ---- hidden pronouns ---------------------------------------------------------------------------
@torch.no_grad()
def gender_accuracy(model: torch.nn.Module, tokenizer, pairs, batch_size: int = 128) -> tuple[float, int]:
    """(share of cases where a BERT prefers the right pronoun, number of cases).

    Introduced in chapter 05_bert. A case is a he/she/him/her in B of a pair whose B follows
    A, where the grammar forbids the other gender: A and B with that pronoun flipped (he <->
    she, him <-> her) is not a possible story (`toyworld.story_log_prob` is -inf). The
    pronoun is replaced by [MASK] and the case is right when the model's MLM logit there is
    higher for the true pronoun than for the flipped one (a tie counts as wrong). The grammar
    scores 100%; a coin, 50%.

    `pairs`: (A, B, label) triples, label 0 when B follows A and 1 when B is a random sentence
    (Hugging Face's NSP convention); random pairs are skipped. The words of B must be one
    token of `tokenizer` each. The model runs in eval mode on padded batches of `batch_size`
    cases, padding masked (`model(ids, segments, attention_mask=...)`), and is left in the mode
    it was in. No case at all is an error, not an accuracy.
    """
    pairs = _check_pairs(pairs, labeled=True)
    device = _model_device(model)
    _check_tokenizer(tokenizer, ("encode_pair", "id_to_token", "token_to_id", "mask_id", "pad_id"))
    cases = []  # (masked ids, segments, position, true pronoun id, flipped pronoun id)
    for a, b, label in pairs:
        if label == 1:
            continue                                     # a random B: its pronouns need not fit A
        words = tokenize_en(b)
        ids, seg = tokenizer.encode_pair(a, b)
        start = seg.index(1)                             # B's first token
        if [tokenizer.id_to_token(i) for i in ids[start:-1]] != words:
            raise ValueError(f"tokenizer must keep every toy-world word whole (one token each): "
                             f"pairs hold {b!r}, tokenized as {[tokenizer.id_to_token(i) for i in ids]}")
        for k in [k for k, i in enumerate(ids) if seg[k] == 1 and tokenizer.id_to_token(i) in _FLIP]:
            w = tokenizer.id_to_token(ids[k])
            flipped = [_FLIP[x] if j == k - start else x for j, x in enumerate(words)]
            if story_log_prob(a + " " + detokenize_en(flipped)) > -math.inf:
                continue                                 # both genders possible
            cases.append((ids[:k] + [tokenizer.mask_id] + ids[k + 1:], seg, k, ids[k],
                          tokenizer.token_to_id(_FLIP[w])))
    right = total = 0
    was_training = model.training
    model.eval()
    try:
        for i in range(0, len(cases), batch_size):   # padded batches, padding masked
            chunk = cases[i:i + batch_size]
            width = max(len(c[0]) for c in chunk)
            ids = torch.tensor([c[0] + [tokenizer.pad_id] * (width - len(c[0])) for c in chunk], device=device)
            seg = torch.tensor([c[1] + [0] * (width - len(c[1])) for c in chunk], device=device)
            keep = torch.tensor([[True] * len(c[0]) + [False] * (width - len(c[0])) for c in chunk], device=device)
            logits = model(ids, seg, attention_mask=keep).logits
            rows = torch.arange(len(chunk), device=device)
            at = logits[rows, torch.tensor([c[2] for c in chunk], device=device)]
            true = at[rows, torch.tensor([c[3] for c in chunk], device=device)]
            other = at[rows, torch.tensor([c[4] for c in chunk], device=device)]
            right += int((true > other).sum())
            total += len(chunk)
    finally:
        model.train(was_training)
    if total == 0:
        raise ValueError("pairs hold no pronoun in a true pair whose other gender the grammar forbids: "
                         "nothing to score")
    return right / total, total


# ---- induction heads ---------------------------------------------------------------------------
@torch.no_grad()
def induction_scores(model: torch.nn.Module, token_ids: list[int], length: int = 20, n: int = 32,
                     bos_id: int | None = None, seed: int = 0) -> torch.Tensor:
    """(layers, heads): mean attention from each token of a repeated random sequence to the
    token right after its first occurrence (Olsson et al. 2022). Introduced in chapter 06_gpt.

    Sequences are [bos] r r, with r `length` tokens drawn from token_ids; a pure induction head
    scores 1, a head that attends uniformly about 1/(position). The sequences are drawn on the
    CPU and moved to the model's device, so one seed gives the same sequences on every device;
    the scores, a small table to print, are returned on the CPU."""
    if isinstance(length, bool) or not isinstance(length, int) or length < 2:
        raise ValueError(f"length must be an int >= 2, got {length!r}")
    if not token_ids or len(set(token_ids)) < 2:
        raise ValueError("token_ids must hold at least 2 distinct ids to draw from")
    gen = torch.Generator().manual_seed(seed)
    pool = torch.tensor(sorted(set(token_ids)))
    r = pool[torch.randint(len(pool), (n, length), generator=gen)]
    parts = ([torch.full((n, 1), bos_id)] if bos_id is not None else []) + [r, r]
    ids = torch.cat(parts, dim=1).to(next(model.parameters()).device)
    was_training = model.training
    model.eval()
    attentions = model(ids, need_weights=True).attentions
    model.train(was_training)
    off = 1 if bos_id is not None else 0
    # every token of the second copy, on the device of the weights it indexes
    queries = torch.arange(off + length, off + 2 * length, device=attentions[0].device)
    targets = queries - length + 1  # the token after the same token's first occurrence
    return torch.stack([a[:, :, queries, targets].mean(dim=(0, 2)) for a in attentions]).cpu()


# ---- "a" and "an": two words that must agree ---------------------------------------------------
def determiner_noun_cases(tokenizer, pairs, limit: int = 200) -> list[tuple[list[int], list[int], int]]:
    """(ids, segment ids, position of the determiner) for the first "a" or "an" right before a
    noun in each (A, B) pair, up to `limit` pairs. Introduced in chapter 07_xlnet: the grammar
    writes "an" before a vowel and "a" otherwise, so hiding both words tests whether a model's
    two predictions agree."""
    nouns = {w for w, *_ in ANIMALS} | {w for group in THINGS.values() for w, *_ in group}
    dets = {tokenizer.token_to_id("a"), tokenizer.token_to_id("an")}
    cases = []
    for a, b in pairs:
        ids, seg = tokenizer.encode_pair(a, b)
        d = next((d for d in range(1, len(ids) - 1)
                  if ids[d] in dets and tokenizer.id_to_token(ids[d + 1]) in nouns), None)
        if d is not None:
            cases.append((ids, seg, d))
        if len(cases) == limit:
            break
    return cases


def forbidden_determiner_share(joint: torch.Tensor, tokenizer) -> torch.Tensor:
    """(batch,): of the probability a (batch, 2, vocab) joint log-probability over (["a", "an"],
    next token) puts on a determiner and a word, the share the grammar forbids: "an" before a
    word that starts with a consonant, "a" before one that starts with a vowel (words only:
    pieces and special tokens are left out). Introduced in chapter 07_xlnet."""
    if not isinstance(joint, torch.Tensor) or joint.dim() != 3 or joint.shape[1:] != (2, tokenizer.vocab_size):
        got = tuple(joint.shape) if isinstance(joint, torch.Tensor) else type(joint).__name__
        raise ValueError(f"joint must have shape (batch, 2, vocab_size={tokenizer.vocab_size}), got {got}")
    names = [tokenizer.id_to_token(i) for i in range(tokenizer.vocab_size)]
    vowel = torch.tensor([w.isalpha() and w[0] in "aeiou" for w in names], device=joint.device)
    consonant = torch.tensor([w.isalpha() and w[0] not in "aeiou" for w in names], device=joint.device)
    p = joint.exp()
    bad = (p[:, 0] * vowel).sum(-1) + (p[:, 1] * consonant).sum(-1)  # "a apple", "an cake"
    good = (p[:, 0] * consonant).sum(-1) + (p[:, 1] * vowel).sum(-1)
    return bad / (bad + good)

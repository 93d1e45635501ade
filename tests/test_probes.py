"""Probes: word relations and hidden words from the grammar, head accuracy, relation tables, the
gender test and induction scores, on hand-worked cases and stand-in models with known attention."""

from __future__ import annotations

import math
from collections import Counter
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F

from lmbook_utils import attention, fewshot
from lmbook_utils import toyworld as tw
from lmbook_utils.probes import (RelationRow, gender_accuracy, head_accuracy, hidden_word_posterior,
                                 induction_scores, relation_table, word_relations)

torch.set_num_threads(2)


def test_each_probe_has_one_home():
    for module, name in ((tw, "word_relations"), (tw, "hidden_word_posterior"), (attention, "head_accuracy"),
                         (fewshot, "induction_scores")):
        assert not hasattr(module, name) and name not in getattr(module, "__all__", ()), (module, name)


# ---- word_relations (chapter 05) --------------------------------------------------------------
def test_word_relations_by_hand():
    toks = tw.tokenize_en("Alice saw a big dog. She liked it. Bob gave her the ball.")
    # 0 alice 1 saw 2 a 3 big 4 dog 5 . 6 she 7 liked 8 it 9 . 10 bob 11 gave 12 her 13 the 14 ball 15 .
    rel = word_relations(toks)
    assert ("determiner → noun", 2, 4) in rel and ("determiner → noun", 13, 14) in rel
    assert ("object → verb", 4, 1) in rel and ("object → verb", 8, 7) in rel
    assert ("pronoun → antecedent", 6, 0) in rel and ("pronoun → antecedent", 12, 0) in rel
    assert len(rel) == 6  # "gave" takes two objects and is left out; "bob" is a subject


def test_word_relations_follow_the_grammar_on_stories():
    counts = Counter()
    for story in tw.generate_stories(200, seed=3):
        toks = tw.tokenize_en(story.en)
        for kind, q, t in word_relations(toks):
            counts[kind] += 1
            if kind == "determiner → noun":
                assert toks[q] in ("a", "the") and 0 < t - q <= 2
            elif kind == "object → verb":
                assert t < q and toks[t] in ("saw", "ate", "read", "found", "lost", "liked", "loved",
                                             "disliked", "hated")
            else:  # the antecedent is a name of the pronoun's gender
                assert tw.PEOPLE[[p[0].lower() for p in tw.PEOPLE].index(toks[t])][2] == \
                    {"he": "m", "him": "m", "she": "f", "her": "f"}[toks[q]]
    assert min(counts.values()) > 50, counts


def test_word_relations_bad_input():
    with pytest.raises(ValueError, match="tokens must be a list of word strings"):
        word_relations("Alice saw a dog.")


WORDS = ["he", "she", "alice", "bob", "sang", "laughed", "."]


def test_hidden_word_posterior_by_hand():
    tokens = tw.tokenize_en("Alice laughed. She sang.")
    post = dict(zip(WORDS, hidden_word_posterior(tokens, 3, WORDS)))
    assert post["he"] == 0.0                       # no man has been introduced
    assert post["alice"] == 0.0                    # the grammar says "she" for a known, unambiguous woman
    assert post["she"] > 0 and post["bob"] > 0     # "Bob sang." introduces a new person
    assert sum(post.values()) == pytest.approx(1.0)
    # the ratio of two candidates is the ratio of the two stories' probabilities
    ratio = math.exp(tw.story_log_prob("Alice laughed. She sang.") - tw.story_log_prob("Alice laughed. Bob sang."))
    assert post["she"] / post["bob"] == pytest.approx(ratio)
    # the last token of a story can only be its period
    assert dict(zip(WORDS, hidden_word_posterior(tokens, len(tokens) - 1, WORDS)))["."] == 1.0


def test_hidden_word_posterior_bad_input():
    tokens = tw.tokenize_en("Alice laughed. She sang.")
    with pytest.raises(ValueError, match="position"):
        hidden_word_posterior(tokens, len(tokens), WORDS)
    with pytest.raises(ValueError, match="position"):
        hidden_word_posterior(tokens, True, WORDS)
    with pytest.raises(ValueError, match="words"):
        hidden_word_posterior(tokens, 0, [])
    with pytest.raises(ValueError, match="tokens"):
        hidden_word_posterior("Alice laughed.", 0, WORDS)
    # "Bob laughed. ___ sang." with no woman and only "she" offered: nothing fits, no guess
    with pytest.raises(ValueError, match="no word in words"):
        hidden_word_posterior(tw.tokenize_en("Bob laughed. He sang."), 3, ["she"])


# ---- head_accuracy (chapter 05) ---------------------------------------------------------------
def test_head_accuracy_counts_argmax_hits():
    att = torch.zeros(2, 1, 3, 3)  # (layers, heads, queries, keys)
    att[0, 0] = torch.tensor([[1.0, 0, 0], [1.0, 0, 0], [0, 1.0, 0]])  # layer 0: previous token (row 0: itself)
    att[1, 0] = torch.tensor([[0, 0, 1.0], [0, 0, 1.0], [0, 0.6, 0.4]])  # layer 1: mostly the last token
    links = [(1, 0), (2, 1)]
    acc = head_accuracy([(att, links)])
    torch.testing.assert_close(acc, torch.tensor([[1.0], [0.5]]))
    # an excluded key is never the argmax: layer 1, query 1 falls back to key 0 or 1 (tie -> first)
    acc = head_accuracy([(att, links)], exclude=[[2]])
    assert acc[1, 0] == 1.0  # query 1: keys 0, 1 tie at 0 -> key 0 = target; query 2: key 1 = target


def test_head_accuracy_pools_examples_by_link():
    one = torch.eye(2).expand(1, 1, 2, 2)  # attends to itself
    acc = head_accuracy([(one, [(0, 0)]), (one, [(0, 1), (1, 0), (1, 1)])])
    assert float(acc) == 0.5  # 2 of the 4 links hit


def test_head_accuracy_bad_input():
    att = torch.zeros(1, 1, 3, 3)
    with pytest.raises(ValueError, match=r"attention must be a \(layers, heads, T, T\) tensor"):
        head_accuracy([(torch.zeros(3, 3), [(0, 1)])])
    with pytest.raises(ValueError, match="link .* outside the 3 positions"):
        head_accuracy([(att, [(0, 3)])])
    with pytest.raises(ValueError, match="no links"):
        head_accuracy([(att, [])])
    with pytest.raises(ValueError, match="exclude must give one list of positions per example"):
        head_accuracy([(att, [(0, 1)])], exclude=[[0], [1]])


# ---- relation_table (chapter 05) --------------------------------------------------------------
class _WordTokenizer:
    """BERT's tokenizer interface with one token per toy-world word: [CLS] a [SEP] b [SEP]."""

    def __init__(self, texts, drop=()):
        words = sorted({w for t in texts for w in tw.tokenize_en(t)} - set(drop))
        self.itos = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *words]
        self.stoi = {t: i for i, t in enumerate(self.itos)}
        self.mask_id, self.pad_id = self.stoi["[MASK]"], self.stoi["[PAD]"]

    def encode_pair(self, a, b):
        first = [2] + [self.stoi.get(w, 1) for w in tw.tokenize_en(a)] + [3]
        second = [self.stoi.get(w, 1) for w in tw.tokenize_en(b)] + [3]
        return first + second, [0] * len(first) + [1] * len(second)

    def id_to_token(self, i):
        return self.itos[i]

    def token_to_id(self, t):
        return self.stoi[t]


class _FixedHeads(torch.nn.Module):
    """Two layers of two one-hot heads: layer 0 the previous and the next token, layer 1 [CLS]
    (position 0) and the token two back. Records the mode it was called in."""

    def __init__(self):
        super().__init__()
        self.w, self.modes = torch.nn.Parameter(torch.zeros(1)), []

    def forward(self, ids, seg, need_weights=False):
        assert need_weights and ids.shape == seg.shape and ids.shape[0] == 1
        self.modes.append(self.training)
        t = ids.shape[1]
        pos = torch.arange(t)
        hot = lambda targets: F.one_hot(targets.clamp(0, t - 1), t).float()  # noqa: E731
        layers = [torch.stack([hot(pos - 1), hot(pos + 1)]), torch.stack([hot(pos * 0), hot(pos - 2)])]
        return SimpleNamespace(attentions=[a[None] for a in layers])  # (batch, heads, T, T) per layer


PAIRS = [("Alice saw a dog.", "She slept.", 0), ("Bob saw a big dog.", "He laughed.", 0)]


def test_relation_table_by_hand():
    # pieces, pair 1: 0 [CLS] 1 alice 2 saw 3 a 4 dog 5 . 6 [SEP] 7 she 8 slept 9 . 10 [SEP]
    #         pair 2: 0 [CLS] 1 bob 2 saw 3 a 4 big 5 dog 6 . 7 [SEP] 8 he 9 laughed 10 . 11 [SEP]
    # links: determiner (3, 4) and (3, 5); object (4, 2) and (5, 2); pronoun (7, 1) and (8, 1).
    # [CLS] and [SEP] are never the argmax: a head whose one-hot weight is on one of them has
    # every other key at 0 and picks the first, position 1 (the name) -- a hit for the pronoun.
    model = _FixedHeads().train()
    table = relation_table(model, _WordTokenizer([t for p in PAIRS for t in p[:2]]), PAIRS)
    assert list(table) == ["determiner → noun", "object → verb", "pronoun → antecedent"]
    # determiner: only "next token" (L0 H1) hits, in pair 1; offsets +1, +2 (tie: the first seen)
    assert table["determiner → noun"] == (2, 0, 1, 0.5, 1, 0.5)
    # object: only "two back" (L1 H1) hits, in pair 1; offsets -2, -3
    assert table["object → verb"] == (2, 1, 1, 0.5, -2, 0.5)
    # pronoun: "previous token" (a [SEP]) and "[CLS]" both fall back to position 1 and hit; the
    # first of the tied heads is L0 H0; offsets -6, -7
    assert table["pronoun → antecedent"] == (2, 0, 0, 1.0, -6, 0.5)
    row = table["object → verb"]
    assert isinstance(row, RelationRow) and (row.layer, row.head, row.offset) == (1, 1, -2)
    assert model.modes == [False, False] and model.training  # run in eval mode, mode restored


def test_relation_table_bad_input():
    tok = _WordTokenizer([t for p in PAIRS for t in p[:2]])
    with pytest.raises(ValueError, match="pairs must be a non-empty list"):
        relation_table(_FixedHeads(), tok, [])
    with pytest.raises(ValueError, match="pairs must be a non-empty list.*pair 0"):
        relation_table(_FixedHeads(), tok, [("Alice saw a dog.",)])
    with pytest.raises(ValueError, match="model must be a torch.nn.Module"):
        relation_table(lambda ids, seg: None, tok, PAIRS)
    with pytest.raises(ValueError, match="tokenizer must be a WordPieceTokenizer"):
        relation_table(_FixedHeads(), object(), PAIRS)
    with pytest.raises(ValueError, match="tokenizer must keep every toy-world word whole"):
        relation_table(_FixedHeads(), _WordTokenizer([t for p in PAIRS for t in p[:2]], drop=["slept"]), PAIRS)
    with pytest.raises(ValueError, match="no relation"):
        relation_table(_FixedHeads(), _WordTokenizer(["Alice laughed. Bob sang."]), [("Alice laughed.", "Bob sang.")])


# ---- gender_accuracy (chapter 05) -------------------------------------------------------------
class _PronounGuesser(torch.nn.Module):
    """MLM logits that prefer "she" to "he" and "him" to "her" at [MASK], and elsewhere the input
    token itself (so a pronoun left unmasked would always be guessed right)."""

    def __init__(self, tok):
        super().__init__()
        self.w, self.modes, self.mask_id, self.n = torch.nn.Parameter(torch.zeros(1)), [], tok.mask_id, len(tok.itos)
        self.guess = torch.zeros(self.n)
        for word, score in (("she", 2.0), ("he", 1.0), ("him", 2.0), ("her", 1.0)):
            self.guess[tok.token_to_id(word)] = score

    def forward(self, ids, seg, attention_mask=None):
        self.modes.append(self.training)
        assert ids.shape == seg.shape == attention_mask.shape
        assert ((ids == self.mask_id).sum(1) == 1).all()  # one [MASK] per case
        assert (attention_mask == (ids != 0)).all()  # padding (id 0) masked, nothing else
        logits = 10 * F.one_hot(ids, self.n).float()
        logits[ids == self.mask_id] = self.guess
        return SimpleNamespace(logits=logits)


GENDER_PAIRS = [
    ("Alice laughed.", "She sang.", 0),              # "He sang." impossible: a case, "she" is right
    ("Bob laughed.", "He sang.", 0),                 # a case, the model says "she": wrong
    ("Alice laughed.", "She sang.", 1),              # a random pair: skipped
    ("Alice saw Bob.", "She laughed.", 0),           # "He laughed." is possible (Bob): skipped
    ("Bob saw Alice.", "He gave her a ball.", 0),    # two cases: "she" for he (wrong), "him" for her (wrong)
]


def test_gender_accuracy_by_hand():
    tok = _WordTokenizer([t for p in GENDER_PAIRS for t in p[:2]] + ["he she him her"])
    model = _PronounGuesser(tok).train()
    assert gender_accuracy(model, tok, GENDER_PAIRS) == (0.25, 4)
    assert model.modes == [False] and model.training  # one padded batch, eval mode, mode restored
    assert gender_accuracy(model, tok, GENDER_PAIRS, batch_size=3) == (0.25, 4)
    assert model.modes == [False] * 3  # batches of 3 and 1
    # the cases are exactly those where the grammar forbids the flipped story
    assert tw.story_log_prob("Alice laughed. He sang.") == -math.inf
    assert tw.story_log_prob("Alice saw Bob. He laughed.") > -math.inf
    assert gender_accuracy(model, tok, GENDER_PAIRS[:1]) == (1.0, 1)


def test_gender_accuracy_of_a_bert_is_the_same_in_batches_and_one_case_at_a_time():
    from lmbook_utils.bert import Bert, BertConfig

    tok = _WordTokenizer([t for p in GENDER_PAIRS for t in p[:2]] + ["he she him her"])
    torch.manual_seed(0)
    bert = Bert(BertConfig.tiny(vocab_size=len(tok.itos)))
    assert gender_accuracy(bert, tok, GENDER_PAIRS) == gender_accuracy(bert, tok, GENDER_PAIRS, batch_size=1)


def test_gender_accuracy_bad_input():
    tok = _WordTokenizer([t for p in GENDER_PAIRS for t in p[:2]] + ["he she him her"])
    model = _PronounGuesser(tok)
    with pytest.raises(ValueError, match="pairs must be a non-empty list of \\(A, B, label\\)"):
        gender_accuracy(model, tok, [])
    with pytest.raises(ValueError, match="pair 0"):
        gender_accuracy(model, tok, [("Alice laughed.", "She sang.")])      # no label
    with pytest.raises(ValueError, match="pair 1"):
        gender_accuracy(model, tok, [GENDER_PAIRS[0], ("Bob laughed.", "He sang.", 2)])
    with pytest.raises(ValueError, match="model must be a torch.nn.Module"):
        gender_accuracy("bert", tok, GENDER_PAIRS)
    with pytest.raises(ValueError, match="tokenizer must be a WordPieceTokenizer.*mask_id"):
        gender_accuracy(model, SimpleNamespace(encode_pair=None, id_to_token=None, token_to_id=None), GENDER_PAIRS)
    with pytest.raises(ValueError, match="tokenizer must keep every toy-world word whole"):
        gender_accuracy(model, _WordTokenizer(["Alice laughed. he she him her"]), GENDER_PAIRS[:1])
    with pytest.raises(ValueError, match="no pronoun"):
        gender_accuracy(model, tok, GENDER_PAIRS[2:4])   # a random pair and a possible flip only


# ---- induction_scores (chapter 06) ----------------------------------------------------------
class _Copier(torch.nn.Module):
    """Attention weights that are a perfect induction head in layer 1, uniform in layer 0."""

    def __init__(self, length):
        super().__init__()
        self.length, self.w = length, torch.nn.Parameter(torch.zeros(1))

    def forward(self, ids, need_weights=False):
        b, t = ids.shape
        uniform = torch.tril(torch.ones(t, t))
        uniform = (uniform / uniform.sum(-1, keepdim=True)).expand(b, 2, t, t)
        induction = torch.zeros(b, 2, t, t)
        for q in range(t):
            earlier = [p for p in range(q) if ids[0, p] == ids[0, q]]
            induction[:, :, q, earlier[0] + 1 if earlier else 0] = 1.0
        return type("Out", (), {"attentions": [uniform, induction]})()


def test_induction_scores_find_a_copying_head():
    # a single-sequence batch: the fake head looks the token up in row 0
    scores = induction_scores(_Copier(10), list(range(2, 400)), length=10, n=1, bos_id=1, seed=4)
    assert scores.shape == (2, 2)
    assert torch.allclose(scores[1], torch.ones(2))
    assert (scores[0] < 0.2).all()
    with pytest.raises(ValueError, match="length must be an int >= 2"):
        induction_scores(_Copier(1), [2, 3], length=1)
    with pytest.raises(ValueError, match="at least 2 distinct ids"):
        induction_scores(_Copier(4), [2, 2], length=4)


def test_forbidden_determiner_share_and_the_cases_it_is_measured_on():
    from lmbook_utils.probes import determiner_noun_cases, forbidden_determiner_share
    from lmbook_utils.tokenizers import WordPieceTokenizer

    texts = ["Bob ate an apple.", "Tom ate a cake.", "Emma ate a big cake."] * 10
    tok = WordPieceTokenizer.train(texts, vocab_size=80)
    pairs = [("Emma ate a big cake.", "She laughed."), ("Bob ate an apple.", "He ate a cake.")]
    cases = determiner_noun_cases(tok, pairs)
    assert len(cases) == 1  # "a big cake": an adjective between, so no case
    ids, seg, d = cases[0]
    assert tok.id_to_token(ids[d]) == "an" and tok.id_to_token(ids[d + 1]) == "apple"
    assert (ids, seg) == tuple(tok.encode_pair(*pairs[1]))
    A, AN, APPLE, CAKE = (tok.token_to_id(w) for w in ("a", "an", "apple", "cake"))
    joint = torch.full((3, 2, tok.vocab_size), -math.inf)
    joint[0, 0, APPLE] = 0.0  # all on "a apple": forbidden
    joint[1, 1, APPLE] = 0.0  # all on "an apple": allowed
    joint[2, 0, APPLE] = joint[2, 0, CAKE] = math.log(0.5)  # half "a apple", half "a cake"
    torch.testing.assert_close(forbidden_determiner_share(joint, tok), torch.tensor([1.0, 0.0, 0.5]))
    with pytest.raises(ValueError, match="joint must have shape"):
        forbidden_determiner_share(joint[:, :1], tok)

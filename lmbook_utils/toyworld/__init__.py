"""The toy world: a seeded probabilistic grammar that writes parallel English/Chinese stories.

Introduced in chapter 00_introduction; every later chapter trains on it. Because the generator
knows the exact probability of everything it writes, we know the corpus' true entropy: the
floor under any model's cross-entropy.

The grammar is a synchronous PCFG (`RULES`: each rule has a probability, an English and a
Chinese right-hand side sharing nonterminals) and it is unambiguous in both languages: every
text has one derivation, so p(text) is the product of the probabilities of the choices made
(the tests check this by parsing). A *story* is 2-5 sentences (length uniform); each sentence
picks its rule as a standalone sentence does, but its noun-phrase *slots* (`_SLOTS`) refer to
the story's entities: with probability `P_NEW` a new one (a name not used yet, or "a [adj]
noun" of a kind not present yet), otherwise one already introduced (uniform, never one
already mentioned in the same sentence). The form of a known entity is not a choice: "he"/
"she" (他/她) when it is the only person of that gender so far, "it" (它) when it is the only
non-person so far, else its name or "the noun". So the text determines the derivation, and
a pronoun's gender depends on a name several sentences back.

Units (use these so that every chapter compares with the same floor):
- `tokenize_en`: lowercase, words ``[a-z0-9]+`` and each other non-space character
  (punctuation) as its own token. Capitalization and spacing are a fixed function of the
  tokens (`detokenize_en` inverts it exactly on toy-world text), so they carry no information.
- Each story is one line and one sequence. A word model predicts its T tokens plus one
  end-of-story token ``</s>`` (the `ngram` convention): T + 1 predictions per story. A
  character model predicts every character plus the ``"\\n"`` that ends the line.
- Chinese is measured per character (`tokenize_zh`: every non-space character), plus one
  end-of-story unit per story.

`entropy_floor(stories)` = sum(-ln p(story)) / number of units, a Monte-Carlo estimate of
the entropy rate, with a standard error (ratio estimator over i.i.d. stories). A model q
trained on other stories has expected cross-entropy E[-ln q] >= E[-ln p] on held-out
toy-world text: it can approach the floor but, in expectation, not beat it.

The modules, each depending only on the ones before it:
- `grammar`: the lexicon, the rules and their probabilities, the tokens;
- `sampling`: how the grammar writes a sentence or a story (private helpers);
- `parsing`: exact probabilities by parsing (`log_prob`, `story_log_prob`, `grammar_shares`);
- `corpus`: sentences, stories, `entropy_floor`, `ToyCorpus` and `generate_corpus`;
- `views`: labeled examples for tasks (sentiment, NSP, translation, coreference, ...);
- `app_views`: for the coming chapter 09, facts as triples and a knowledge graph, an FAQ,
  preferences, out-of-scope intents and polarity-flipped story pairs; for chapter 08, question
  answering in Chinese (`qa_examples_zh`).
Everything public is imported here: ``from lmbook_utils import toyworld as tw; tw.generate_corpus()``.
What measures a trained model against the grammar is in `lmbook_utils.probes`.
"""

from . import app_views, corpus, grammar, parsing, sampling, views
from .corpus import *  # noqa: F401,F403
from .grammar import *  # noqa: F401,F403
from .parsing import *  # noqa: F401,F403
from .views import *  # noqa: F401,F403
from .app_views import *  # noqa: F401,F403

__all__ = [*grammar.__all__, *parsing.__all__, *corpus.__all__, *views.__all__, *app_views.__all__]

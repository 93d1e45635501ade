"""Character, word and subword (BPE, WordPiece) tokenizers behind one small interface.

Introduced in chapter 00_introduction (characters, words, BPE by hand); BPE (Sennrich, Haddow &
Birch 2016, ACL; byte-level as in GPT-2, Radford et al. 2019) is GPT's in chapter 06_gpt and
WordPiece BERT's in chapter 05_bert. Every tokenizer has encode/decode/tokenize, a vocabulary
with fixed special tokens and JSON save/load (no pickle).

Conventions:
- Ids: special tokens come first, in the order pad, unk, bos, eos (each may be None to leave it
  out), then the caller's extra specials (e.g. "[CLS]", "[SEP]", "[MASK]"), then ordinary
  tokens. So with the defaults <pad>=0, <unk>=1, <bos>=2, <eos>=3 whatever the training text.
- A special token written in the text (e.g. "[MASK]") is encoded as that special token.
- Unknown input maps to the unk token; with ``unk=None`` encode raises ValueError instead.
- Lossless, decode(encode(text)) == text: CharTokenizer (when every character is known) and
  byte-level BPETokenizer (always). WordTokenizer and whitespace BPE lose the spacing.

The modules, each depending only on the ones before it:
- `base`: the `Tokenizer` interface (ids, specials, errors, save/load), `split_words`;
- `simple`: `CharTokenizer` and `WordTokenizer`, whose pieces are given;
- `subword`: `BPETokenizer` and `WordPieceTokenizer`, whose pieces are learned.
Everything is imported here: ``from lmbook_utils.tokenizers import BPETokenizer, Tokenizer``.
(The Hugging Face library is the top-level ``tokenizers``; this package never shadows it.)
"""

from .base import ROLES, Tokenizer, split_words
from .base import _WORD, _check_texts  # noqa: F401  (private; hf_export imports _WORD from here)
from .simple import CharTokenizer, WordTokenizer
from .subword import BPETokenizer, WordPieceTokenizer
from .subword import _learn_merges  # noqa: F401

__all__ = ["ROLES", "Tokenizer", "split_words", "CharTokenizer", "WordTokenizer", "BPETokenizer",
           "WordPieceTokenizer"]

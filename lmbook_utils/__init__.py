"""lmbook_utils: the companion package of LLM Book.

The chapters in ``book/chapters`` import their models, data, tokenizers,
training loop, plots and exercise checks from here, one module per idea:

- ``repro``: seeds and device choice, so every run is reproducible;
- ``toyworld``: the generated bilingual corpus with a known entropy floor;
- ``data`` and ``tokenizers``: real text, the reader's own text, and tokenizers;
- ``ngram``: n-gram language models (chapter 01_ngram);
- ``train`` and ``plots``: the one training loop and the book's plot style.

Importing the package is cheap: each module is imported only when used.
"""

__version__ = "0.1.0"

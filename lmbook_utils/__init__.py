"""lmbook_utils: the companion package of LLM Book.

The chapters in ``book/chapters`` import their models, data, tokenizers,
training loop, plots and exercise checks from here, one module per idea:

- ``repro``: seeds and device choice, so every run is reproducible;
- ``toyworld``: the generated bilingual corpus with a known entropy floor;
- ``data`` and ``tokenizers``: real text, the reader's own text, batches, and tokenizers;
- ``ngram``: n-gram language models (chapter 01_ngram);
- ``attention``, ``dropout`` and ``transformer``: the shared building blocks (chapters 03 and 04);
- ``bert`` and ``gpt``: the pretrained models, equal to Hugging Face's (chapters 05 and 06);
- ``fewshot`` and ``textstats``: few-shot prompts, induction scores, measures of
  generated text (chapter 06_gpt);
- ``train`` and ``plots``: the one training loop and the book's plot style;
- ``viz`` and ``exercises``: attention views and controls that work offline, and
  exercise checks with kind feedback.

Importing the package is cheap: each module is imported only when used.
"""

__version__ = "0.1.0"

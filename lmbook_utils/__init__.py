"""lmbook_utils: the companion package of LLM Book.

The chapters in ``book/chapters`` import their models, data, tokenizers,
training loop, plots and exercise checks from here, one module per idea:

- ``repro``: seeds, device choice and pinned CPU kernels, so every run is reproducible;
- ``toyworld``: the generated bilingual corpus with a known entropy floor (grammar, corpus, task views);
- ``data`` and ``tokenizers``: real text, the reader's own text, batches, and tokenizers;
- ``ngram``: n-gram language models (chapter 01_ngram);
- ``neural_lm`` and ``agreement``: Bengio's neural probabilistic LM, Elman and LSTM language
  models, and pronoun agreement at a distance (chapter 02_neural_lm);
- ``word2vec`` and ``word_vectors``: skip-gram and CBOW with negative sampling, checked against
  gensim; count-based vectors (PPMI, SVD) and evaluations against the grammar's gold labels
  (chapter 02's embedding tables and chapter 02b_word_vectors);
- ``seq2seq``: the LSTM encoder-decoder of Sutskever et al. (2014), BLEU by source length
  (chapter 02c_encoder_decoder);
- ``attention``, ``dropout`` and ``transformer``: the shared building blocks (chapters 03 and 04);
- ``modeling``, ``decoding`` and ``hf_export``: what every model shares (inputs, masks,
  outputs), ``generate``/``beam_search`` for every model that writes, and folders Hugging
  Face loads (CONTRIBUTING.md describes the contract);
- ``bert`` and ``gpt``: the pretrained models, equal to Hugging Face's (chapters 05 and 06);
- ``xlnet``, ``permutation_lm`` and ``tagging``: the permutation language model with two-stream
  attention, equal to Hugging Face's; its objective measured (a chosen order's log-probability,
  two hidden tokens' joint); BIO tags on subword pieces (chapter 07_xlnet); ``xlnet_pretraining``:
  XLNet pretrained on a text stream in segments with memory, and the paper's ablations
  (07b_xlnet_ablations);
- ``electra``, ``electra_hf``, ``flops`` and ``qa``: replaced-token detection with a generator
  and a discriminator equal to Hugging Face's, the FLOPs of a training step, and extractive
  question answering with SQuAD's metric (chapter 08_electra); the paper's MLM ablations,
  Replace MLM and All-Tokens MLM (08b_electra_ablations); ``replaced_token_probes``: the trained
  discriminator next to the optimal one the grammar makes computable (08 and 08c);
- ``calibration``, ``ranking``, ``retrieval`` and ``kg``: calibration error and temperature
  scaling; retrieval and link-prediction metrics; BM25 equal to rank-bm25's, dense retrieval,
  TransE link prediction, and ``heads``, sequence, token and span heads over any encoder (for
  the coming chapter 09); ``dedup``: exact and near-duplicate
  removal with MinHash and LSH (for the coming chapter 10);
- ``probes``: what a trained model knows about the grammar (head accuracy, induction scores);
- ``fewshot`` and ``textstats``: few-shot prompts and measures of generated text (chapter 06_gpt);
- ``train`` (with ``train_batches``, ``train_progress``, ``train_step`` and
  ``train_checkpoints``) and ``plots``: the one training loop and the book's plot style;
  ``checkpoint``, ``distributed`` and ``cli``: its checkpoints, its DDP and FSDP2 modes under
  torchrun, and ``python -m lmbook_utils.cli train``;
- ``viz`` (``attention_views``, ``html_views``) and ``exercises``: attention views and controls
  that work offline, and exercise checks with kind feedback, one module per chapter;
- ``quiz``: each chapter's self-check quiz (questions in ``quizzes/chNN.json``), shown offline;
- ``student`` and ``grading``: for teachers, the chapters without solutions (``make student``)
  and the grades of the notebooks students hand back (``make grade``).

Importing the package is cheap: each module is imported only when used.
"""

__version__ = "0.1.0"

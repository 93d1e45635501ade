"""Floating-point operations of one training step of the book's encoders: BERT's and ELECTRA's
(with its MLM ablations).

Introduced in chapter 08_electra, to compare ELECTRA and BERT at equal pretraining compute, as
Clark et al. 2020 do (their Figure 1 and Table 1 count FLOPs, generator included). As
`gpt.training_flops_per_token`, only the matrix products are counted: 2 operations (a multiply
and an add) per weight of every linear layer per token, the output layer included, and
4 * T * d_model per token per layer for the attention scores and the weighted sum of the values
over T positions; the backward pass of a product costs twice its forward. Biases, LayerNorms,
softmax, GELU, embedding lookups and sampling are O(d) per token and left out. The counts are
exact for our modules: they equal `torch.utils.flop_counter.FlopCounterMode` on a real step
(tested).
"""

from __future__ import annotations

from .bert import BertConfig
from .electra import ElectraConfig

__all__ = ["encoder_forward_flops", "bert_step_flops", "electra_step_flops", "replaced_mlm_step_flops"]


def _positive(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be an int >= 1, got {value!r}")
    return value


def encoder_forward_flops(d_model: int, n_layers: int, d_ff: int, batch: int, seq_len: int) -> int:
    """Forward FLOPs of a Transformer encoder's layers on (batch, seq_len) tokens: per token and
    layer, Q, K, V and the output projection (4 d^2 weights), the feed-forward (2 d d_ff), the
    scores and the weighted values (2 * 2 * seq_len * d)."""
    tokens = _positive(batch, "batch") * _positive(seq_len, "seq_len")
    per_token = n_layers * (2 * (4 * d_model * d_model + 2 * d_model * d_ff) + 4 * seq_len * d_model)
    return tokens * per_token


def bert_step_flops(config: BertConfig, batch: int, seq_len: int) -> int:
    """FLOPs of one masked-language-model training step of `bert.Bert` (heads=("mlm",), targets
    given) on (batch, seq_len) tokens: the encoder and the MLM head (dense d x d, then the tied
    output layer d x vocab at every position), forward and backward, plus the pooler's forward
    (dense on [CLS], computed though no loss reads it, so it has no backward)."""
    if not isinstance(config, BertConfig):
        raise TypeError(f"config must be a BertConfig, got {type(config).__name__}")
    tokens = _positive(batch, "batch") * _positive(seq_len, "seq_len")
    d = config.d_model
    forward = (encoder_forward_flops(d, config.n_layers, config.d_ff, batch, seq_len)
               + tokens * 2 * (d * d + d * config.vocab_size))
    return 3 * forward + batch * 2 * d * d


def _electra_forward(c: ElectraConfig, head: int, batch: int, seq_len: int) -> int:
    tokens = batch * seq_len
    project = c.embedding_size * c.d_model if c.embedding_size != c.d_model else 0
    return encoder_forward_flops(c.d_model, c.n_layers, c.d_ff, batch, seq_len) + tokens * 2 * (project + head)


def _mlm_head(c: ElectraConfig) -> int:
    """Weights per token of `electra.ElectraGenerator`'s head: dense d x E, tied output E x vocab."""
    return c.d_model * c.embedding_size + c.embedding_size * c.vocab_size


def _check_pair(generator: object, other: object, other_name: str, batch: object, seq_len: object) -> None:
    for name, c in (("generator", generator), (other_name, other)):
        if not isinstance(c, ElectraConfig):
            raise TypeError(f"{name} must be an ElectraConfig, got {type(c).__name__}")
    _positive(batch, "batch"), _positive(seq_len, "seq_len")


def electra_step_flops(generator: ElectraConfig, discriminator: ElectraConfig, batch: int, seq_len: int) -> int:
    """FLOPs of one `electra.ElectraPretraining` step on (batch, seq_len) tokens: the generator
    (projection, encoder, head dense d_g x E and tied output E x vocab at every position) and the
    discriminator (projection, encoder, head d x d and d x 1), each forward and backward.
    Both backward passes go down to the shared embeddings, so each costs twice its forward."""
    _check_pair(generator, discriminator, "discriminator", batch, seq_len)
    d_head = discriminator.d_model * discriminator.d_model + discriminator.d_model
    return 3 * (_electra_forward(generator, _mlm_head(generator), batch, seq_len)
                + _electra_forward(discriminator, d_head, batch, seq_len))


def replaced_mlm_step_flops(generator: ElectraConfig, model: ElectraConfig, batch: int, seq_len: int,
                            all_tokens: bool = False) -> int:
    """FLOPs of one `electra.ReplacedMLMPretraining` step on (batch, seq_len) tokens: the
    generator as in `electra_step_flops`, and the main model, an MLM (projection, encoder, head
    dense d x E and tied output E x vocab at every position, plus the copy head d x 1 when
    `all_tokens`), each forward and backward. Replace MLM's loss reads the masked positions
    only, but the output layer is a product over all of them, and its backward too (zero
    gradients elsewhere); both backward passes go down to the shared embeddings, so each
    costs twice its forward."""
    _check_pair(generator, model, "model", batch, seq_len)
    if not isinstance(all_tokens, bool):
        raise TypeError(f"all_tokens must be a bool, got {all_tokens!r}")
    m_head = _mlm_head(model) + (model.d_model if all_tokens else 0)
    return 3 * (_electra_forward(generator, _mlm_head(generator), batch, seq_len)
                + _electra_forward(model, m_head, batch, seq_len))

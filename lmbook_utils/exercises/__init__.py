"""Exercise checks: kind, specific feedback on a learner's answer.

Each ``check_*`` function runs the learner's code on cases the learner has not
seen, compares with an independent reference, and prints one message that says
what is wrong and where ("your probabilities for counts [3 0 1] with k=0.5 sum
to 1.7, not 1"). It returns True when the answer is right, so a teacher can
also grade a batch of submissions. Checks never raise on a wrong answer: an
exception in the learner's code is reported as a message too.

One module per chapter (``ch00_introduction`` ... ``ch08_electra``,
``ch02b_word_vectors``, ``ch07b_xlnet_ablations``, ``ch08b_electra_ablations``,
``ch08c_electra_longer_chinese``), each importing only what its own checks need; ``_common``
holds what they share. Chapters call ``exercises.check_xxx(...)``: this package re-exports every
check and imports a chapter's module only when one of its checks is first used, so chapter 00
does not load torch or the transformer to check a probability worked out by hand.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# check name -> the module (one per chapter) that defines it
_MODULE_OF = {
    "check_toy_probability": "ch00_introduction",
    "check_apply_merges": "ch00_introduction",
    "check_learn_bpe": "ch00_introduction",
    "check_bigram_mle": "ch01_ngram",
    "check_add_k": "ch01_ngram",
    "check_perplexity": "ch01_ngram",
    "check_lm_metrics": "ch02_neural_lm",
    "check_elman_step": "ch02_neural_lm",
    "check_lstm_lm_parameters": "ch02_neural_lm",
    "check_sgns_gradients": "ch02b_word_vectors",
    "check_ppmi": "ch02b_word_vectors",
    "check_procrustes": "ch02b_word_vectors",
    "check_reverse_source": "ch02c_encoder_decoder",
    "check_teacher_forcing": "ch02c_encoder_decoder",
    "check_brevity_penalty": "ch02c_encoder_decoder",
    "check_attention": "ch03_attention",
    "check_causal_mask": "ch03_attention",
    "check_positional_encoding": "ch04_transformer",
    "check_label_smoothing": "ch04_transformer",
    "check_bert_input": "ch05_bert",
    "check_mask_decision": "ch05_bert",
    "check_head_score": "ch05_bert",
    "check_top_k": "ch06_gpt",
    "check_top_p": "ch06_gpt",
    "check_few_shot_optimum": "ch06_gpt",
    "check_query_mask": "ch07_xlnet",
    "check_content_mask": "ch07_xlnet",
    "check_rel_shift": "ch07_xlnet",
    "check_span_length_probs": "ch07b_xlnet_ablations",
    "check_segments": "ch07b_xlnet_ablations",
    "check_memory_reach": "ch07b_xlnet_ablations",
    "check_replaced_labels": "ch08_electra",
    "check_discriminator_loss": "ch08_electra",
    "check_optimal_discriminator": "ch08_electra",
    "check_scored_positions": "ch08b_electra_ablations",
    "check_copy_loss": "ch08b_electra_ablations",
    "check_steps_at_budget": "ch08b_electra_ablations",
    "check_char_f1": "ch08c_electra_longer_chinese",
    "check_auc": "ch08c_electra_longer_chinese",
    "check_answer_tokens": "ch08c_electra_longer_chinese",
}

__all__ = list(_MODULE_OF)

if TYPE_CHECKING:  # for type checkers and IDEs; at run time __getattr__ imports on first use
    from .ch00_introduction import check_apply_merges, check_learn_bpe, check_toy_probability
    from .ch01_ngram import check_add_k, check_bigram_mle, check_perplexity
    from .ch02_neural_lm import check_elman_step, check_lm_metrics, check_lstm_lm_parameters
    from .ch02b_word_vectors import check_ppmi, check_procrustes, check_sgns_gradients
    from .ch02c_encoder_decoder import check_brevity_penalty, check_reverse_source, check_teacher_forcing
    from .ch03_attention import check_attention, check_causal_mask
    from .ch04_transformer import check_label_smoothing, check_positional_encoding
    from .ch05_bert import check_bert_input, check_head_score, check_mask_decision
    from .ch06_gpt import check_few_shot_optimum, check_top_k, check_top_p
    from .ch07_xlnet import check_content_mask, check_query_mask, check_rel_shift
    from .ch07b_xlnet_ablations import check_memory_reach, check_segments, check_span_length_probs
    from .ch08_electra import check_discriminator_loss, check_optimal_discriminator, check_replaced_labels
    from .ch08b_electra_ablations import check_copy_loss, check_scored_positions, check_steps_at_budget
    from .ch08c_electra_longer_chinese import check_answer_tokens, check_auc, check_char_f1


def __getattr__(name: str) -> Any:
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}; "
                             f"the checks are {', '.join(__all__)}")
    return getattr(importlib.import_module(f".{module}", __name__), name)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))

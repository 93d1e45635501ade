"""Numbers in the prose come from the outputs: a measured figure the text states must appear in
the chapter's stored outputs, so that a rerun that moves it cannot leave the text behind.

What counts as a measured figure in a markdown cell: a decimal (0.83, 1,234.5), a percentage
(48.6%) or a ratio (1.3x, 2×). Whole numbers are not checked (years, counts, sizes set in the
code), nor display math ($$...$$), inline code, section numbers ("### 4.2", "section 5.1") or
links. A figure is found when the same digits appear as a number anywhere in the chapter's
text outputs (printed text, text/plain, HTML); numbers drawn into figures are not text, so the
text quotes only what a cell also prints.

ALLOWED lists, per chapter, the figures that rightly come from elsewhere: numbers quoted from a
paper next to its citation, and the few the text derives by hand. Each says why. This is
markdown checked against outputs, chosen over myst-nb's `glue` because glue roles show as raw
markup when a reader opens the chapter in Jupyter.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

CHAPTERS = Path(__file__).resolve().parents[1] / "book" / "chapters"

FIGURE = re.compile(r"(?<![\w.])\d[\d,]*\.\d+%?|(?<![\w.])\d[\d,]*%|(?<![\w.])\d+(?:\.\d+)?(?:x\b|×)")
IN_OUTPUT = re.compile(r"\d[\d,]*(?:\.\d+)?")

ALLOWED: dict[str, dict[str, str]] = {
    "00_introduction": {
        "0.10": "a grammar rule's probability, set in toyworld's grammar, quoted as an example",
        "0.8": "the grammar's probability of a name, quoted from toyworld's rules",
        "0.25": "the grammar's probability of an animal object, quoted from toyworld's rules",
    },
    "01_ngram": {
        "4.7": "log2(26), the bits of 26 equally likely letters (Shannon 1951's comparison)",
        "4.9": "'about 4.9': the Kneser-Ney perplexity of section 5.1 (4.92) rounded in the FAQ",
        "0.45": "Church and Gale's held-out count for n-grams seen once, via Chen and Goodman (1998)",
        "0.75": "Church and Gale's discount for counts 2 to 9, via Chen and Goodman (1998)",
    },
    "02_neural_lm": {
        "24%": "Bengio et al. (2003): perplexity lower than the best n-gram model's on the Brown corpus",
        "50%": "Mikolov et al. (2010): perplexity reduction of a mixture of RNN LMs against a backoff model",
    },
    "02b_word_vectors": {
        "0.75": "Mikolov et al. (2013b, NeurIPS): the exponent of the noise distribution, unigram^0.75",
        "50%": "Mikolov et al. (2010): perplexity reduction of a mixture of RNN LMs against a backoff model",
    },
    "02c_encoder_decoder": {
        "34.8": "Sutskever et al. (2014): WMT'14 English-French BLEU of an ensemble of five LSTMs",
        "33.3": "Sutskever et al. (2014): BLEU of the phrase-based baseline",
        "5.8": "Sutskever et al. (2014), section 3.3: test perplexity without source reversal",
        "4.7": "Sutskever et al. (2014), section 3.3: test perplexity with source reversal",
        "25.9": "Sutskever et al. (2014), section 3.3: BLEU without source reversal",
        "30.6": "Sutskever et al. (2014), section 3.3: BLEU with source reversal",
    },
    "04_transformer": {
        "28.4": "Vaswani et al. (2017): WMT 2014 English-German BLEU",
        "41.8": "Vaswani et al. (2017): WMT 2014 English-French BLEU",
        "25.7": "Vaswani et al. (2017), Table 3 row E: learned positions, dev BLEU",
        "25.8": "Vaswani et al. (2017), Table 3: sinusoidal positions, dev BLEU",
        "3.5": "Vaswani et al. (2017): days of training on 8 GPUs",
    },
    "05_bert": {
        "80.5": "Devlin et al. (2019): GLUE score of BERT-large",
        "7.7": "Devlin et al. (2019): GLUE points above the previous best",
        "84.4": "Devlin et al. (2019), Table 5: MNLI with NSP",
        "83.9": "Devlin et al. (2019), Table 5: MNLI without NSP",
        "88.4": "Devlin et al. (2019), Table 5: QNLI with NSP",
        "84.9": "Devlin et al. (2019), Table 5: QNLI without NSP",
        "88.5": "Devlin et al. (2019), Table 5: SQuAD F1 with NSP",
        "87.9": "Devlin et al. (2019), Table 5: SQuAD F1 without NSP",
        "84.3": "Devlin et al. (2019), Table 8: MNLI, 80/10/10 masking",
        "84.2": "Devlin et al. (2019), Table 8: MNLI, 100% [MASK]",
        "94.0": "Devlin et al. (2019), Table 8: feature-based NER, 100% [MASK]",
        "94.9": "Devlin et al. (2019), Table 8: feature-based NER, 80/10/10",
        "0.8": "the 80/10/10 rule's probabilities, set in the exercise",
        "40%": "a masking rate the exercise asks the reader to try",
    },
    "08_electra": {
        "79.9": "Clark et al. (2020), Table 1: GLUE score of ELECTRA-Small",
        "75.1": "Clark et al. (2020), Table 1: GLUE score of BERT-Small",
        "74.1": "Clark et al. (2020), Table 1: ELECTRA-Small after 6.25% of its training",
        "6.25%": "Clark et al. (2020), Table 1: the shortest ELECTRA-Small run's share of training",
    },
    "07b_xlnet_ablations": {
        "64.3": "Yang et al. (2019), Table 6: BERT-Base",
        "73.66": "Yang et al. (2019), Table 6: BERT-Base",
        "84.34": "Yang et al. (2019), Table 6: BERT-Base",
        "84.65": "Yang et al. (2019), Table 6: BERT-Base",
        "92.78": "Yang et al. (2019), Table 6: BERT-Base, - memory",
        "76.80": "Yang et al. (2019), Table 6: DAE + Transformer-XL",
        "84.88": "Yang et al. (2019), Table 6: DAE + Transformer-XL",
        "84.45": "Yang et al. (2019), Table 6: DAE + Transformer-XL",
        "92.60": "Yang et al. (2019), Table 6: DAE + Transformer-XL",
        "78.46": "Yang et al. (2019), Table 6: XLNet-Base (K = 7)",
        "85.84": "Yang et al. (2019), Table 6: XLNet-Base (K = 7)",
        "85.43": "Yang et al. (2019), Table 6: XLNet-Base (K = 7)",
        "92.66": "Yang et al. (2019), Table 6: XLNet-Base (K = 7), - bidirectional data",
        "78.18": "Yang et al. (2019), Table 6: XLNet-Base (K = 6)",
        "85.63": "Yang et al. (2019), Table 6: XLNet-Base (K = 6)",
        "85.12": "Yang et al. (2019), Table 6: XLNet-Base (K = 6)",
        "93.35": "Yang et al. (2019), Table 6: XLNet-Base (K = 6)",
        "77.27": "Yang et al. (2019), Table 6: - memory",
        "85.32": "Yang et al. (2019), Table 6: - memory, + next-sent pred",
        "85.05": "Yang et al. (2019), Table 6: - memory",
        "77.91": "Yang et al. (2019), Table 6: - span-based pred",
        "85.49": "Yang et al. (2019), Table 6: - span-based pred",
        "85.02": "Yang et al. (2019), Table 6: - span-based pred",
        "93.12": "Yang et al. (2019), Table 6: - span-based pred",
        "66.34": "Yang et al. (2019), Table 6: - bidirectional data",
        "80.65": "Yang et al. (2019), Table 6: - bidirectional data",
        "77.87": "Yang et al. (2019), Table 6: - bidirectional data",
        "85.31": "Yang et al. (2019), Table 6: - bidirectional data",
        "84.99": "Yang et al. (2019), Table 6: - bidirectional data",
        "66.76": "Yang et al. (2019), Table 6: + next-sent pred",
        "79.83": "Yang et al. (2019), Table 6: + next-sent pred",
        "76.94": "Yang et al. (2019), Table 6: + next-sent pred",
        "85.09": "Yang et al. (2019), Table 6: + next-sent pred",
        "92.89": "Yang et al. (2019), Table 6: + next-sent pred",
    },
    "08b_electra_ablations": {
        "82.2": "Clark et al. (2020), Table 5: GLUE score of BERT at the Base size",
        "82.4": "Clark et al. (2020), Table 5: GLUE score of Replace MLM and of ELECTRA 15%",
        "84.3": "Clark et al. (2020), Table 5: GLUE score of All-Tokens MLM",
        "85.0": "Clark et al. (2020), Table 5: GLUE score of ELECTRA at the Base size",
    },
    "06_gpt": {
        "0.34": "Hoffmann et al. (2022): their fitted parameter exponent",
        "0.076": "Kaplan et al. (2020): their fitted parameter exponent",
        "1.5": "Radford et al. (2019): GPT-2's 1.5 billion parameters",
    },
}


def _strip(markdown: str) -> str:
    """The prose without math, inline code, link targets, headings and section references."""
    text = re.sub(r"\$\$.*?\$\$", " ", markdown, flags=re.S)
    # inline math is checked too: worked examples state computed figures there
    text = re.sub(r"`[^`]*`", " ", text)
    text = re.sub(r"\]\([^)]*\)", "]", text)
    text = re.sub(r"^#+ .*$", " ", text, flags=re.M)
    return re.sub(r"\b[Ss]ections? \d+(?:\.\d+)*", " ", text)


def _output_text(nb: dict) -> str:
    parts = []
    for cell in nb["cells"]:
        for out in cell.get("outputs", []):
            parts.append("".join(out.get("text", "")))
            for mime in ("text/plain", "text/html", "text/markdown"):
                parts.append("".join(out.get("data", {}).get(mime, "")))
    return "\n".join(parts)


def stated_figures(nb: dict) -> list[tuple[int, str, str]]:
    """(cell index, figure, context) for every measured figure the markdown states."""
    found = []
    for i, cell in enumerate(nb["cells"]):
        if cell["cell_type"] != "markdown":
            continue
        text = _strip("".join(cell["source"]))
        for m in FIGURE.finditer(text):
            context = " ".join(text[max(0, m.start() - 60):m.end() + 30].split())
            found.append((i, m.group(0), context))
    return found


def missing_figures(nb: dict, allowed: dict[str, str]) -> list[str]:
    """Figures the prose states that no output shows and that are not allowed."""
    numbers = set(IN_OUTPUT.findall(_output_text(nb)))
    missing = []
    for i, figure, context in stated_figures(nb):
        digits = figure.rstrip("%x×")
        if digits not in numbers and figure not in allowed and digits not in allowed:
            missing.append(f"cell {i}: {figure!r} in '...{context}...'")
    return missing


@pytest.mark.parametrize("path", sorted(CHAPTERS.glob("*.ipynb")), ids=lambda p: p.stem)
def test_every_stated_figure_is_in_the_outputs(path):
    nb = json.loads(path.read_text(encoding="utf-8"))
    missing = missing_figures(nb, ALLOWED.get(path.stem, {}))
    assert not missing, ("the prose states figures that no output shows (update the text, or "
                         "add a quoted figure to ALLOWED with its source):\n  " + "\n  ".join(missing))


def test_allowed_figures_are_still_stated():
    # An allowance for a figure the text no longer states would hide a future drift.
    for stem, allowed in ALLOWED.items():
        nb = json.loads((CHAPTERS / f"{stem}.ipynb").read_text(encoding="utf-8"))
        stated = {figure for _, figure, _ in stated_figures(nb)}
        stated |= {figure.rstrip("%x×") for figure in stated}
        assert set(allowed) <= stated, f"{stem}: ALLOWED lists {sorted(set(allowed) - stated)}, not in the text"


def test_a_changed_figure_is_caught():
    nb = {"cells": [{"cell_type": "markdown", "source": ["Accuracy reached 48.6% (ratio 1.3x)."]},
                    {"cell_type": "code", "source": [], "outputs": [
                        {"output_type": "stream", "text": ["accuracy 48.6%, speed-up 1.3x\n"]}]}]}
    assert missing_figures(nb, {}) == []
    nb["cells"][0]["source"] = ["Accuracy reached 48.7% (ratio 1.3x)."]
    assert len(missing_figures(nb, {})) == 1
    assert missing_figures(nb, {"48.7%": "quoted"}) == []

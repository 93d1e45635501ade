"""How the toy-world grammar writes: one sentence (`_expand`) or one story (`_sample_story`).

Introduced in chapter 00_introduction. A story's noun-phrase slots refer to its entities: a
new one with probability `P_NEW`, else a known one, whose form ("she", "the dog", a name) is
fixed by the entities so far (`_mention`). `_slot_all` lists every choice of a slot with its
probability, for the parser; `_slot_sample` draws one with the same probabilities. All
randomness comes from the `random.Random` passed in, so a seed fixes every sentence.
"""

from __future__ import annotations

import bisect
import itertools
import math
import random
from functools import lru_cache

from .grammar import (ADJECTIVES, ANIMALS, P_ADJ, P_NEW, PEOPLE, RULES, STORY_LENGTHS, THINGS, _CUM, _NAME_ZH,
                      _NOUN, _SLOTS, _detok, _indef, _rule)

__all__: list[str] = []  # the story process is private; corpus and views use it


def _mention(ents, i, case, pron):
    """The fixed form of known entity i: pronoun if unambiguous, else name or 'the noun'.

    Returns (en tokens, zh, head mark or None); a head mark spans its word in both languages."""
    t, key, g = ents[i]
    if t == "person":
        if pron and sum(e[0] == "person" and e[2] == g for e in ents) == 1:
            en = {"subjm": "he", "subjf": "she", "objm": "him", "objf": "her"}[case + g]
            return (en,), "他" if g == "m" else "她", None
        return (key,), _NAME_ZH[key][0], ("PERSON", 0, 1, 0, len(_NAME_ZH[key][0]))
    if pron and sum(e[0] != "person" for e in ents) == 1:
        return ("it",), "它", None
    zh, clf, _ = _NOUN[key]
    label = "ANIMAL" if t == "animal" else "OBJECT"
    return ("the", key), "那" + clf + zh, (label, 1, 2, 1 + len(clf), 1 + len(clf) + len(zh))


def _first_mentions(kind: str, noun: str, zh: str, clf: str) -> list[tuple]:
    """(prob given the noun, en tokens, zh, head) of each 'a [adj] noun'."""
    label, out = "ANIMAL" if kind == "animal" else "OBJECT", []
    for p, adj in [(1 - P_ADJ, None)] + [(P_ADJ / len(ADJECTIVES[kind]), a) for a in ADJECTIVES[kind]]:
        r = _rule("", 0, *_indef(noun, zh, clf, adj))
        out.append((p, r.en[0][1], r.zh[0][1], (label, *r.head, *r.head_zh)))
    return out


_FIRST = {n: _first_mentions(k, n, z, c) for k in ("animal", *THINGS)
          for n, z, c in (ANIMALS if k == "animal" else THINGS[k])}


@lru_cache(maxsize=1 << 16)
def _new_options(slot: str, present: frozenset) -> tuple[tuple, tuple]:
    """A story slot's new-entity choices given the entities present: (cum probs, options).

    Class (person / animal / thing) uniform among those with something left, then for a thing
    its type uniform, then the name or noun uniform, then the adjective (P_ADJ)."""
    allowed, _, _ = _SLOTS[slot]
    groups = []
    if "person" in allowed:
        names = [(n.lower(), z, g) for n, z, g in PEOPLE if n.lower() not in present]
        groups.append([(1 / len(names), ("person", n, g), (n,), z, ("PERSON", 0, 1, 0, len(z)))
                       for n, z, g in names] if names else [])
    for cls in ("animal", "thing"):
        ks = [k for k in ("animal", "food", "toy", "reading") if k in allowed and (k == "animal") ==
              (cls == "animal") and any(e[0] not in present for e in (ANIMALS if k == "animal" else THINGS[k]))]
        group = []
        for k in ks:
            avail = [e[0] for e in (ANIMALS if k == "animal" else THINGS[k]) if e[0] not in present]
            group += [(p / (len(ks) * len(avail)), (k, noun, None), en, zh, head)
                      for noun in avail for p, en, zh, head in _FIRST[noun]]
        groups.append(group)
    groups = [g for g in groups if g]
    opts = tuple((o[0] / len(groups),) + o[1:] for g in groups for o in g)
    return tuple(itertools.accumulate(o[0] for o in opts)), opts


def _slot_choices(slot: str, ents: tuple, used: tuple):
    """(known entities allowed here, P(new), new options' cum probs, new options)."""
    allowed = _SLOTS[slot][0]
    existing = [i for i, e in enumerate(ents) if e[0] in allowed and i not in used]
    cum, new = _new_options(slot, frozenset(e[1] for e in ents))
    p_new = 0.0 if not new else (1.0 if not existing else P_NEW)
    return existing, p_new, cum, new


def _slot_all(slot: str, ents: tuple, used: tuple):
    """Every choice of a story slot: (prob, en, zh, head, new ents, new used, entity index)."""
    _, case, pron = _SLOTS[slot]
    existing, p_new, _, new = _slot_choices(slot, ents, used)
    for i in existing:
        yield ((1 - p_new) / len(existing), *_mention(ents, i, case, pron), ents, used + (i,), i)
    for p, ent, en, zh, head in new:
        yield p_new * p, en, zh, head, ents + (ent,), used + (len(ents),), len(ents)


def _slot_sample(slot: str, ents: tuple, used: tuple, rng: random.Random):
    _, case, pron = _SLOTS[slot]
    existing, p_new, cum, new = _slot_choices(slot, ents, used)
    if existing and (not new or rng.random() >= p_new):
        i = existing[int(rng.random() * len(existing))]
        return ((1 - p_new) / len(existing), *_mention(ents, i, case, pron), ents, used + (i,), i)
    p, ent, en, zh, head = new[_pick(cum, rng)]
    return p_new * p, en, zh, head, ents + (ent,), used + (len(ents),), len(ents)


def _pick(cum, rng: random.Random) -> int:
    return min(bisect.bisect_right(cum, rng.random() * cum[-1]), len(cum) - 1)


def _shift(mark: tuple, s: int, z: int) -> tuple:
    """A mark moved s tokens on in English and z characters on in Chinese."""
    return (mark[0], mark[1] + s, mark[2] + s, *mark[3:-2], mark[-2] + z, mark[-1] + z)


def _expand(sym: str, rng: random.Random, ctx):
    """Sample from `sym`: (en tokens, zh, log p, marks, tags, ctx). ctx=(ents, used) in stories.

    marks: (label, start, end, zh_start, zh_end) entity heads, ("REF", s, e, entity, zs, ze)
    story mentions, ("PLACE_PHRASE", s, e, zs, ze) place phrases; start/end are token indices
    into en and the last two of each mark character offsets into zh, the same words in Chinese
    (recorded as the synchronous rules write both, so no Chinese span is ever searched for)."""
    if ctx is not None and sym in _SLOTS:
        p, en, zh, head, ents, used, idx = _slot_sample(sym, *ctx, rng)
        marks = [("REF", 0, len(en), idx, 0, len(zh))] + ([head] if head else [])
        return list(en), zh, math.log(p), marks, [], (ents, used)
    rule = RULES[sym][_pick(_CUM[sym], rng)]
    logp, tags, kids = math.log(rule.prob), [rule.tag] if rule.tag else [], {}
    for kind, v in rule.en:
        if kind == "N":
            kids[v] = _expand(v, rng, ctx)
            ctx = kids[v][5]
            logp += kids[v][2]
            tags += kids[v][4]
    zh, at = "", {}  # at: where each child's Chinese starts (the order may differ from English)
    for kind, v in rule.zh:
        if kind == "N":
            at[v] = len(zh)
        zh += v if kind == "T" else kids[v][1]
    en, marks = [], []
    if rule.label:
        marks.append((rule.label, *rule.head, *rule.head_zh))
    for kind, v in rule.en:
        if kind == "T":
            en.extend(v)
            continue
        k, s, z = kids[v], len(en), at[v]
        marks += [_shift(m, s, z) for m in k[3]]
        if v == "PLACE":
            marks.append(("PLACE_PHRASE", s, s + len(k[0]), z, z + len(k[1])))
        en.extend(k[0])
    return en, zh, logp, marks, tags, ctx


def _sample_story(rng: random.Random) -> dict:
    """One story: its text, tokens, Chinese sentences, entity marks, events, entities and log p.

    Marks are as `_expand`'s, their offsets into the story's tokens and into "".join(zh)."""
    n = STORY_LENGTHS[int(rng.random() * len(STORY_LENGTHS))]
    logp, ents, tokens, zh, bounds, marks, events = math.log(1 / len(STORY_LENGTHS)), (), [], [], [], [], []
    for _ in range(n):
        en, z, lp, mk, tags, (ents, _) = _expand("S", rng, (ents, ()))
        s = len(tokens)
        mk = [_shift(m, s, sum(map(len, zh))) for m in mk]
        refs = [m for m in mk if m[0] == "REF"]
        events += [(t[6:], refs[0][3], [m for m in mk if m[0] == "PLACE_PHRASE"] + refs[1:])
                   for t in tags if t.startswith("event=")]
        tokens += en
        zh.append(z)
        bounds.append((s, len(tokens)))
        marks += mk
        logp += lp
    text, offsets = _detok(tokens)
    return {"text": text, "offsets": offsets, "tokens": tokens, "zh": zh, "bounds": bounds,
            "marks": marks, "events": events, "ents": ents, "log_prob": logp}

"""Flickr-like noisy tags for toy_nuswide: synonyms of present labels with dropout, camera/place noise, stray tags.

What real NUS-WIDE / MIRFlickr tags look like, and so what the text encoder must cope with:
a label is often not tagged at all, or only by a synonym; tags name the camera, the year,
the trip; and a few tags name things that are not in the picture.
"""

from __future__ import annotations

import numpy as np

from egath_lite.data.reference import NUS_TC10_LABELS
from egath_lite.data.toy_render import ANIMAL_KINDS

# Per label: the synonym list (first entry = the label's own word) and each entry's tag rate when present.
SYNONYMS: dict[str, list[tuple[str, float]]] = {
    "sky": [("sky", 0.6), ("blue", 0.3), ("skyscape", 0.1), ("heaven", 0.05), ("horizon", 0.15), ("daylight", 0.05)],
    "clouds": [("clouds", 0.6), ("cloud", 0.25), ("cloudy", 0.2), ("cumulus", 0.05), ("white", 0.15)],
    "person": [
        ("person", 0.3),
        ("people", 0.35),
        ("portrait", 0.2),
        ("man", 0.15),
        ("woman", 0.15),
        ("girl", 0.1),
        ("boy", 0.08),
        ("friends", 0.1),
        ("face", 0.08),
        ("me", 0.05),
    ],
    "water": [
        ("water", 0.55),
        ("sea", 0.25),
        ("ocean", 0.15),
        ("river", 0.15),
        ("waves", 0.15),
        ("reflection", 0.1),
        ("beach", 0.15),
        ("coast", 0.08),
    ],
    "animal": [("animal", 0.35), ("pet", 0.15), ("wildlife", 0.1), ("zoo", 0.08), ("nature", 0.1)],
    "grass": [("grass", 0.6), ("green", 0.3), ("field", 0.2), ("meadow", 0.1), ("lawn", 0.08), ("park", 0.1)],
    "buildings": [
        ("buildings", 0.4),
        ("building", 0.3),
        ("architecture", 0.3),
        ("city", 0.2),
        ("urban", 0.12),
        ("tower", 0.08),
        ("house", 0.1),
        ("skyline", 0.08),
    ],
    "window": [("window", 0.55), ("windows", 0.25), ("glass", 0.1), ("facade", 0.08), ("lights", 0.1)],
    "plants": [
        ("plants", 0.35),
        ("plant", 0.25),
        ("flowers", 0.2),
        ("leaves", 0.2),
        ("garden", 0.15),
        ("tree", 0.1),
        ("green", 0.15),
        ("flower", 0.15),
    ],
    "lake": [("lake", 0.6), ("pond", 0.2), ("reflection", 0.15), ("shore", 0.1), ("mountains", 0.1), ("calm", 0.05)],
}
SKY_KIND_TAGS = {2: [("overcast", 0.3), ("grey", 0.2)], 3: [("sunset", 0.5), ("dusk", 0.2), ("orange", 0.15)]}
ANIMAL_TAGS = {k: [(k, 0.5)] for k in ANIMAL_KINDS}  # the species the renderer drew, when it is named
NOISE_TAGS = (
    "canon nikon sony olympus pentax eos 400d d80 d200 dslr 50mm lens "
    "2006 2007 2008 2009 summer winter spring autumn holiday vacation travel trip "
    "london paris newyork tokyo berlin rome california japan italy france usa china spain "
    "photo photography flickr explore interestingness bw hdr macro art color nikond80 canon40d"
).split()
NOISE_COUNT = (1, 5)  # uniform number of noise tags per item, inclusive
STRAY_RATE = 0.03  # per absent label: chance that one of its synonyms is tagged anyway
MENTION_RATE = 0.85  # per present label: chance that it is tagged at all (else all its synonyms drop out)


def sample_tags(labels: np.ndarray, attrs: dict[str, np.ndarray], rng: np.random.Generator) -> list[str]:
    """labels (N, 10) 0/1 and renderer attrs -> N tag strings (space-joined, shuffled, no duplicates)."""
    labels = np.asarray(labels)
    n = labels.shape[0]
    per_item: list[list[str]] = [[] for _ in range(n)]

    def emit(mask: np.ndarray, synonyms: list[tuple[str, float]], at_least_one: bool = False) -> None:
        """Each synonym is tagged independently with its rate for the items in mask (at_least_one: one if none hit)."""
        draws = rng.random((n, len(synonyms)))
        rates = np.array([r for _, r in synonyms])
        hits = (draws < rates) & mask[:, None]
        if at_least_one:  # a mentioned label gets one synonym, chosen in proportion to the rates
            fallback = np.searchsorted(np.cumsum(rates) / rates.sum(), rng.random(n), side="right")
            none = mask & ~hits.any(axis=1)
            hits[np.flatnonzero(none), np.minimum(fallback[none], len(synonyms) - 1)] = True
        for i, j in zip(*np.nonzero(hits)):
            per_item[i].append(synonyms[j][0])

    for c, name in enumerate(NUS_TC10_LABELS):
        present = labels[:, c] > 0
        mentioned = present & (rng.random(n) < MENTION_RATE)
        emit(mentioned, SYNONYMS[name], at_least_one=True)
        stray = ~present & (rng.random(n) < STRAY_RATE)
        pick = rng.integers(0, len(SYNONYMS[name]), n)
        for i in np.flatnonzero(stray):
            per_item[i].append(SYNONYMS[name][pick[i]][0])
    for kind, synonyms in SKY_KIND_TAGS.items():
        emit(attrs["sky_kind"] == kind, synonyms)
    for k, name in enumerate(ANIMAL_KINDS):
        emit(attrs["animal_kind"] == k, ANIMAL_TAGS[name])
    n_noise = rng.integers(NOISE_COUNT[0], NOISE_COUNT[1] + 1, n)
    noise = rng.integers(0, len(NOISE_TAGS), (n, NOISE_COUNT[1]))
    order = rng.random((n, 96))  # shuffle keys; 96 > the most tags this generator can produce (76)
    texts = []
    for i in range(n):
        tags = per_item[i] + [NOISE_TAGS[t] for t in noise[i, : n_noise[i]]]
        unique = list(dict.fromkeys(tags))  # first occurrence wins, deterministic
        keys = order[i, : len(unique)]
        texts.append(" ".join(unique[j] for j in np.argsort(keys, kind="stable")))
    return texts

"""Demographic term lists for the corpus bias report, each from a published, citable source.

Every list is a *group* of words; the report counts whole-word, case-insensitive occurrences.
The sources (full references in docs/reports.md, "Bias report"):

* gender: the male and female attribute words of WEAT 7 and 8 (Caliskan, Bryson and Narayanan,
  "Semantics derived automatically from language corpora contain human-like biases", Science 356,
  2017), plus the definitional pairs of Bolukbasi et al., "Man is to Computer Programmer as Woman is
  to Homemaker?", NeurIPS 2016 (woman/man, mother/father, girl/boy, herself/himself, daughter/son,
  gal/guy, mary/john);
* religion: the Judaism / Christianity / Islam sets of Manzini et al., "Black is to Criminal as
  Caucasian is to Police", NAACL 2019;
* race: the black / white / asian sets of Manzini et al. (2019), the same paper;
* age: the "young" and "old" descriptors of the age axis of HolisticBias (Smith et al., "I'm sorry
  to hear that", EMNLP 2022), a selection of the single-word ones.

Word lists like these are crude: "black" and "white" are colours far more often than people in
technical text, "her" is also a possessive, names stand for genders only by convention. The report
says so next to the numbers.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TermGroup:
    axis: str
    group: str
    words: tuple[str, ...]
    source: str


GROUPS: tuple[TermGroup, ...] = (
    TermGroup("gender", "female", ("female", "woman", "girl", "sister", "she", "her", "hers", "daughter",
                                   "mother", "herself", "gal", "mary"),
              "WEAT 7/8 female attributes (Caliskan et al. 2017) + Bolukbasi et al. 2016 definitional pairs"),
    TermGroup("gender", "male", ("male", "man", "boy", "brother", "he", "him", "his", "son",
                                 "father", "himself", "guy", "john"),
              "WEAT 7/8 male attributes (Caliskan et al. 2017) + Bolukbasi et al. 2016 definitional pairs"),
    TermGroup("religion", "judaism", ("judaism", "jew", "jewish", "synagogue", "torah", "rabbi"),
              "Manzini et al. 2019, religion sets"),
    TermGroup("religion", "christianity", ("christianity", "christian", "church", "bible", "priest"),
              "Manzini et al. 2019, religion sets"),
    TermGroup("religion", "islam", ("islam", "muslim", "mosque", "quran", "imam"),
              "Manzini et al. 2019, religion sets"),
    TermGroup("race", "black", ("black", "african", "africa"), "Manzini et al. 2019, race sets"),
    TermGroup("race", "white", ("white", "caucasian", "european", "europe"), "Manzini et al. 2019, race sets"),
    TermGroup("race", "asian", ("asian", "asia", "china"), "Manzini et al. 2019, race sets"),
    TermGroup("age", "young", ("young", "younger", "teenage", "teen", "adolescent", "youthful", "child", "kid"),
              "HolisticBias age axis (Smith et al. 2022), single-word young descriptors"),
    TermGroup("age", "old", ("old", "older", "elderly", "senior", "aged", "retired", "geriatric"),
              "HolisticBias age axis (Smith et al. 2022), single-word old descriptors"),
)

# The pairs whose ratio the report gives with an interval (first / second).
RATIOS: tuple[tuple[str, str], ...] = (("female", "male"), ("young", "old"))


def pattern(group: TermGroup) -> str:
    """A case-insensitive whole-word RE2 pattern for ``group`` (used with pyarrow's regex kernels)."""
    return r"(?i)\b(?:" + "|".join(sorted(group.words, key=len, reverse=True)) + r")\b"

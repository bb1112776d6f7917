"""Keyword cues (a corpus tool) and the keyword-rule baseline built on them.

The cue lexicon serves two jobs: the corpus miner oversamples sentences that
contain a cue (so the rare stance classes are well represented), and the
keyword-rule classifier shows how far plain cue matching gets.  Labels in
``data/`` are never produced by these rules.
"""

from __future__ import annotations

import re

# Ordered: when a sentence has cues of several kinds, the rule picks the first
# kind listed (denials usually answer an accusation that is quoted beside them).
CUES: dict[str, str] = {
    "deny": (
        r"den(?:y|ies|ied|ying|ial|ials)|dismiss\w*|disput\w*|reject\w*|refut\w*|rebut\w*|false|"
        r"baseless|untrue|hoax\w*|not true|nonsense|debunk\w*|rubbish|categorically|fake|"
        r"unfounded|no truth|insist\w*"
    ),
    "accuse": (
        r"accus\w*|blam\w*|alleg\w*|condemn\w*|critici[sz]\w*|denounc\w*|slam\w*|brand(?:ed|s)|"
        r"lied|liar|lying|fault|scaremonger\w*|hypocri\w*|betray\w*|smear\w*|guilty|charged|"
        r"responsible for"
    ),
    "support": (
        r"support\w*|back(?:ed|ing|s|er|ers)?|endors\w*|prais\w*|welcom\w*|applaud\w*|hail\w*|"
        r"defend\w*|solidarity|in favour|commend\w*|congratulat\w*|champion\w*|approv\w*"
    ),
}
CUE_PATTERNS: dict[str, re.Pattern[str]] = {
    k: re.compile(rf"\b(?:{v})\b", re.IGNORECASE) for k, v in CUES.items()
}


def cue_kinds(text: str) -> list[str]:
    """The stance kinds whose cue words occur in ``text``, in priority order."""
    return [k for k, p in CUE_PATTERNS.items() if p.search(text)]


def keyword_rule(text: str, default: str = "none") -> str:
    """Label a sentence by its first cue kind: the naive baseline a user tries first."""
    kinds = cue_kinds(text)
    return kinds[0] if kinds else default

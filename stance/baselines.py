"""Keyword cues and the keyword-rule baseline.

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


def tfidf_logreg(train_texts: list[str], train_labels: list[str], dev_texts: list[str], dev_labels: list[str],
                 labels: list[str], seed: int = 0):
    """TF-IDF (word 1-2grams + char 2-5grams) + logistic regression, class_weight and C tuned on dev.

    Returns the fitted scikit-learn pipeline and the chosen settings.
    """
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import f1_score
    from sklearn.pipeline import make_pipeline, make_union

    best = None
    for class_weight in (None, "balanced"):
        for c in (1.0, 4.0, 16.0):
            pipe = make_pipeline(
                make_union(
                    TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True),
                    TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), min_df=2, sublinear_tf=True),
                ),
                LogisticRegression(C=c, class_weight=class_weight, max_iter=2000, random_state=seed),
            )
            pipe.fit(train_texts, train_labels)
            f1 = f1_score(dev_labels, pipe.predict(dev_texts), labels=labels, average="macro", zero_division=0)
            if best is None or f1 > best[0]:
                best = (f1, pipe, {"class_weight": class_weight, "C": c})
    return best[1], best[2]

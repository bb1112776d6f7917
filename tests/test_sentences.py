import pytest

from stance.sentences import split_sentences


def texts(t):
    return [s.text for s in split_sentences(t)]


@pytest.mark.parametrize(
    "text, expected",
    [
        ("The U.S. Senate voted on Jan. 5 to approve it. Then it adjourned.",
         ["The U.S. Senate voted on Jan. 5 to approve it.", "Then it adjourned."]),
        ("Sen. Elizabeth Warren (D-Mass.) accused the bank of fraud. It denied that.",
         ["Sen. Elizabeth Warren (D-Mass.) accused the bank of fraud.", "It denied that."]),
        ('"We will win," he said. "It is false," the spokesman said.',
         ['"We will win," he said.', '"It is false," the spokesman said.']),
        ("Mr. Smith, 45, denied it. Dr. Jones backed him.", ["Mr. Smith, 45, denied it.", "Dr. Jones backed him."]),
        ("Headline with no stop\n\nFirst sentence. Second one!", ["Headline with no stop", "First sentence.",
                                                                   "Second one!"]),
        ("She said: \"no.\" Then left.", ['She said: "no."', "Then left."]),
        ("", []),
        ("   \n\n  ", []),
    ],
)
def test_splits(text, expected):
    assert texts(text) == expected


def test_offsets_index_the_original_text():
    t = "  Intro line\nThe P.M. said it.  He was \"wrong,\" she said.\n\n\tRepeat. Repeat. Repeat."
    sents = split_sentences(t)
    assert [s.text for s in sents][-3:] == ["Repeat.", "Repeat.", "Repeat."]
    for s in sents:
        assert t[s.start:s.end] == s.text
    starts = [s.start for s in sents]
    assert starts == sorted(set(starts))


def test_lowercase_fragment_rejoins():
    # pysbd splits after '?"' — the lowercase continuation belongs to it.
    out = texts('"Why now?" asked the minister. Nobody answered.')
    assert out == ['"Why now?" asked the minister.', "Nobody answered."]


def test_threads_splitting_at_once_each_get_their_own_sentences():
    # `stance serve` splits requests in worker threads; pySBD keeps the text being split on its
    # Segmenter, so a Segmenter shared by threads hands one article's sentences to another.
    from concurrent.futures import ThreadPoolExecutor

    articles = [f"The minister accused the opposition on day {i}. The union denied it. Police met the mayor."
                for i in range(400)]
    with ThreadPoolExecutor(8) as pool:
        got = list(pool.map(texts, articles))
    assert got == [[f"The minister accused the opposition on day {i}.", "The union denied it.",
                    "Police met the mayor."] for i in range(400)]

"""`stance network` on a fixture corpus whose network is known."""

import csv
import json

import networkx as nx
import pytest

from stance.errors import StanceError
from stance.network import actor_key, build_network, network
from tests.test_cli import assert_one_line_error, run

# (doc_id, sentence, label, holder, target): holder/target are the words as written, or None.
FIXTURE = [
    ("a1", "Secretary of State John Kerry accused Russia of grandstanding.", "accuse",
     "Secretary of State John Kerry", "Russia"),
    # "that" (the claim disputed) is a pronoun with no named antecedent: unresolved, no edge.
    ("a1", "A senior U.S. defense official disputed that.", "deny", "A senior U.S. defense official", "that"),
    ("a2", "John Kerry accused Russia again on Tuesday.", "accuse", "John Kerry", "Russia"),
    ("a2", "He also criticised the Kremlin.", "accuse", "He", "the Kremlin"),  # Kerry or Russia: unresolved
    ("a3", "Labour backed Gordon Brown.", "support", "Labour", "Gordon Brown"),
    ("a3", "The weather was mild.", "none", None, None),
    ("a3", "They denied the report.", "deny", "They", "the report"),  # Labour or Brown: unresolved
    ("a4", "Tony Blair denied the claims.", "deny", "Tony Blair", "the claims"),
    ("a4", "He accused the Conservatives of scaremongering.", "accuse", "He", "the Conservatives"),
    ("a4", "Mr Blair backed Gordon Brown's plan.", "support", "Mr Blair", "Gordon Brown's plan"),
    ("a4", "Mr Blair's office welcomed Gordon Brown.", "support", "Mr Blair's office", "Gordon Brown"),
    ("a4", "Brown was accused of dithering.", "accuse", None, "Brown"),
]


def span(article: str, sentence_start: int, sentence: str, words: str | None) -> dict | None:
    if words is None:
        return None
    start = article.index(sentence) + sentence.index(words)
    assert article[start:start + len(words)] == words
    return {"text": words, "start": start, "end": start + len(words)}


def write_predictions(path, fixture=FIXTURE) -> None:
    rows, articles = [], {}
    for doc, sentence, *_ in fixture:
        articles[doc] = (articles.get(doc, "") + " " + sentence).strip()
    idx: dict[str, int] = {}
    for doc, sentence, label, holder, target in fixture:
        article = articles[doc]
        start = article.index(sentence)
        i = idx[doc] = idx.get(doc, -1) + 1
        rows.append({"doc_id": doc, "sent_idx": i, "start": start, "end": start + len(sentence), "text": sentence,
                     "label": label, "score": 0.9, "scores": {},
                     "holder": span(article, start, sentence, holder),
                     "target": span(article, start, sentence, target)})
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def read_csv(path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def test_actor_names_lose_case_possessives_articles_and_titles_but_not_the_whole_name():
    assert actor_key("Secretary of State John Kerry") == actor_key("john kerry") == "john kerry"
    assert actor_key("Mr Blair's") == "blair"
    assert actor_key("The Kremlin") == "kremlin"
    assert actor_key("the President") == "president"
    assert actor_key("State Department") == "state department"
    assert actor_key("Tory leader Michael Howard") == actor_key("Lib Dem leader Michael Howard") == "michael howard"
    assert actor_key("and Mr Brown") == actor_key("the prime minister and Mr Brown") == "brown"
    assert actor_key("the party's chief executive") == "party's chief executive"


def test_the_fixture_corpus_gives_its_known_edges(tmp_path):
    write_predictions(tmp_path / "p.jsonl")
    network([tmp_path / "p.jsonl"], tmp_path / "net")
    edges = {(e["holder"], e["target"], e["stance"]): e for e in read_csv(tmp_path / "net" / "edges.csv")}
    assert {k: int(e["count"]) for k, e in edges.items()} == {
        ("John Kerry", "Russia", "accuse"): 2,
        ("Labour", "Gordon Brown", "support"): 1,
        ("Tony Blair", "claims", "deny"): 1,
        ("Tony Blair", "Conservatives", "accuse"): 1,  # "He" follows a sentence naming only Blair
        ("Tony Blair", "Gordon Brown's plan", "support"): 1,  # "Mr Blair" after "Tony Blair" in a4
        ("Blair's office", "Gordon Brown", "support"): 1,
    }
    kerry = edges[("John Kerry", "Russia", "accuse")]
    assert (kerry["first_doc_id"], kerry["last_doc_id"]) == ("a1", "a2")
    assert kerry["examples"].split(" | ") == [FIXTURE[0][1], FIXTURE[2][1]]


def test_ambiguous_pronouns_stay_out_of_the_graph_and_are_counted(tmp_path):
    write_predictions(tmp_path / "p.jsonl")
    net = build_network([tmp_path / "p.jsonl"])
    assert (net.unresolved["holder"], net.unresolved["target"], net.resolved_pronouns) == (2, 1, 1)
    assert not {"he", "they", "that"} & {key for h, t, _ in net.edges for key in (h, t)}


def test_actors_csv_counts_each_actor_as_holder_and_as_target_per_stance(tmp_path):
    write_predictions(tmp_path / "p.jsonl")
    network([tmp_path / "p.jsonl"], tmp_path / "net")
    actors = {a["actor"]: a for a in read_csv(tmp_path / "net" / "actors.csv")}
    blair = actors["Tony Blair"]
    assert [blair[c] for c in ("holder_deny", "holder_accuse", "holder_support", "total")] == ["1", "1", "1", "3"]
    # "Brown was accused" (no holder) still counts Brown as a target; "Brown" is Gordon Brown inside a4.
    assert actors["Gordon Brown"]["target_accuse"] == "1"
    assert actors["Gordon Brown"]["target_support"] == "2"


def test_graphml_opens_in_networkx_with_one_edge_per_holder_target_and_stance(tmp_path):
    write_predictions(tmp_path / "p.jsonl")
    network([tmp_path / "p.jsonl"], tmp_path / "net")
    g = nx.read_graphml(tmp_path / "net" / "network.graphml", force_multigraph=True)
    assert g.is_directed()
    assert g.number_of_edges() == 6
    assert {d["count"] for u, v, d in g.edges(data=True) if (u, v) == ("John Kerry", "Russia")} == {2}
    assert (tmp_path / "net" / "network.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_stance_network_command_writes_four_files_and_prints_what_it_left_out(tmp_path):
    write_predictions(tmp_path / "p.jsonl")
    r = run("network", str(tmp_path / "p.jsonl"), "--out", str(tmp_path / "net"))
    assert r.exit_code == 0, r.output
    assert sorted(p.name for p in (tmp_path / "net").iterdir()) == \
        ["actors.csv", "edges.csv", "network.graphml", "network.png"]
    assert "3 unresolved" in r.output


def test_network_refuses_to_replace_a_folder_that_is_not_its_own(tmp_path):
    write_predictions(tmp_path / "p.jsonl")
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "keep.txt").write_text("mine")
    assert_one_line_error(run("network", str(tmp_path / "p.jsonl"), "--out", str(tmp_path / "data")), "not empty")
    assert (tmp_path / "data" / "keep.txt").read_text() == "mine"


def test_predictions_without_holder_and_target_name_the_missing_span_model(tmp_path):
    path = tmp_path / "old.jsonl"
    path.write_text(json.dumps({"doc_id": "a", "sent_idx": 0, "text": "X denied it.", "label": "deny"}) + "\n")
    with pytest.raises(StanceError, match="model.spans"):
        build_network([path])


def test_a_broken_prediction_line_is_a_one_line_error_naming_file_and_line(tmp_path):
    write_predictions(tmp_path / "p.jsonl")
    with open(tmp_path / "p.jsonl", "a") as fh:
        fh.write("{broken\n")
    assert_one_line_error(run("network", str(tmp_path / "p.jsonl"), "--out", str(tmp_path / "net")),
                          f"p.jsonl:{len(FIXTURE) + 1}")
    assert not (tmp_path / "net").exists()

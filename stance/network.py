"""The stance network: who accuses, denies or supports whom, aggregated over many articles.

Reads `stance predict` rows that carry `holder` and `target` (a model trained with spans) and
writes four files: ``edges.csv`` (holder, target, stance, count, first and last doc_id, up to
three example sentences), ``actors.csv`` (sentences per actor as holder and as target, per
stance), ``network.graphml`` (a directed multigraph, one edge per holder-target-stance, for
Gephi or networkx) and ``network.png`` (the top actors drawn, edges coloured by stance).

Actor names are normalised so that "Mr Blair", "Tony Blair's" and "blair" can meet: case,
possessives, leading "the" and titles are dropped from the key, and the most frequent
spelling names the node.  "Blair" (or "Mr Blair") joins "Tony Blair" only inside an article
that named exactly one actor of that surname before; across articles a surname alone may be
someone else, so it stays its own actor.  A pronoun holder or target is linked to
the nearest preceding named actor of the same article only when that is unambiguous: the
latest earlier sentence (at most ``PRONOUN_WINDOW`` sentences back) naming any actor names
exactly one.  Otherwise it is counted as unresolved and left out of the graph.
"""

from __future__ import annotations

import csv
import json
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stance.errors import StanceError
from stance.io import atomic_dir, atomic_open, check_output_dir, output_lock

STANCES = ("accuse", "deny", "support")
# Okabe-Ito: distinguishable with every common colour-vision deficiency.
COLOURS = {"accuse": "#D55E00", "deny": "#0072B2", "support": "#009E73"}
PRONOUNS = {"he", "she", "they", "him", "her", "them", "it", "we", "us", "i", "me", "you", "his", "hers",
            "its", "their", "theirs", "our", "ours", "this", "that", "these", "those", "who", "which"}
# Titles dropped from the front of a name, longest first ("Secretary of State John Kerry" -> "John Kerry").
TITLE_PHRASES = sorted({tuple(t.split()) for t in (
    "mr", "mrs", "ms", "miss", "dr", "sir", "dame", "lord", "lady", "president", "vice president", "former president",
    "president-elect", "sen", "senator", "rep", "representative", "congressman", "congresswoman", "gov", "governor",
    "prime minister", "secretary of state", "secretary", "foreign secretary", "home secretary", "chancellor", "mayor",
    "judge", "prof", "professor", "gen", "general", "rev", "candidate", "former")}, key=len, reverse=True)
ARTICLES = ("the", "a", "an")
ROLE_WORDS = {"leader", "chairman", "chairwoman", "chair", "spokesman", "spokeswoman", "spokesperson", "secretary",
              "minister", "chancellor", "president", "chief", "head", "director", "mp", "mep", "candidate", "editor",
              "governor", "senator", "mayor", "commissioner", "adviser", "advisor", "general", "deputy"}
PRONOUN_WINDOW = 3
EXAMPLES = 3
_POSSESSIVE = re.compile(r"['’]s?$")
_EDGE_PUNCT = "\"'“”‘’.,;:!?()[]"


def _lower(words: Sequence[str]) -> tuple[str, ...]:
    return tuple(w.lower().rstrip(".") for w in words)


def core_words(name: str) -> list[str]:
    """A name without outer punctuation, possessive, leading article and leading titles; case kept."""
    words = name.strip().strip(_EDGE_PUNCT).split()
    if words:
        words[-1] = _POSSESSIVE.sub("", words[-1])
    while words and _lower(words[:1])[0] in ARTICLES + ("and", "or"):
        words = words[1:]
    # A role before a name: "Tory leader Michael Howard", "UKIP's chairman Petrina Holdsworth" -> the name,
    # when every word after the last role word is capitalised.
    roles = [i for i, w in enumerate(_lower(words)) if w.split("-")[-1] in ROLE_WORDS]
    if roles and roles[-1] < len(words) - 1 and all(w[:1].isupper() for w in words[roles[-1] + 1:]):
        words = words[roles[-1] + 1:]
    # Never the whole name: "the President" stays "President" (the office is the actor).
    while phrase := next((p for p in TITLE_PHRASES if len(words) > len(p) and _lower(words[:len(p)]) == p), None):
        words = words[len(phrase):]
    # "the prime minister and Mr Brown" lost its title above; what is left starts with "and".
    return core_words(" ".join(words[1:])) if len(words) > 1 and _lower(words[:1])[0] in ("and", "or") else words


def actor_key(name: str) -> str:
    """The key two mentions of one actor share: "Mr Blair's" and "blair" both give "blair"."""
    return " ".join(_lower(core_words(name)))


def is_pronoun(name: str) -> bool:
    return actor_key(name) in PRONOUNS


@dataclass
class Mention:
    doc_id: str
    sent_idx: int
    role: str
    label: str
    text: str  # as written in the article
    sentence: str
    key: str | None = None  # resolved actor key; None = unresolved pronoun


@dataclass
class Network:
    rows: int = 0
    stance_rows: int = 0
    no_roles: int = 0  # stance rows whose holder or target is null
    unresolved: Counter = field(default_factory=Counter)  # role -> pronouns left out
    resolved_pronouns: int = 0
    spellings: dict[str, Counter] = field(default_factory=lambda: defaultdict(Counter))
    edges: dict[tuple[str, str, str], dict[str, Any]] = field(default_factory=dict)
    actor_counts: dict[str, Counter] = field(default_factory=lambda: defaultdict(Counter))

    def name(self, key: str) -> str:
        """The most frequent spelling of an actor (ties: the first seen)."""
        return self.spellings[key].most_common(1)[0][0]


def read_predictions(paths: Sequence[str | Path]) -> Iterator[tuple[Path, int, dict]]:
    """Every row of the prediction files, with its file and line for error messages."""
    for path in map(Path, paths):
        if path.suffix.lower() not in (".jsonl", ".ndjson", ".json"):
            raise StanceError(f"{path}: predictions must be JSONL (stance predict --out FILE.jsonl)")
        try:
            fh = open(path, encoding="utf-8")
        except FileNotFoundError:
            raise StanceError(f"{path}: no such file") from None
        with fh:
            for n, line in enumerate(fh, start=1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as e:
                    raise StanceError(f"{path}:{n}: not a JSON row ({e.msg})") from None
                if not isinstance(row, dict) or not {"doc_id", "sent_idx", "label", "text"} <= row.keys():
                    raise StanceError(f"{path}:{n}: not a stance predict row (needs doc_id, sent_idx, label, text)")
                yield path, n, row


def _mentions(paths: Sequence[str | Path], net: Network) -> Iterator[list[Mention]]:
    """Each stance row's holder and target mentions, in input order."""
    saw_roles = False
    for path, n, row in read_predictions(paths):
        net.rows += 1
        if row["label"] not in STANCES:
            continue
        net.stance_rows += 1
        if "holder" not in row or "target" not in row:
            continue
        saw_roles = True
        out = []
        for role in ("holder", "target"):
            span = row[role]
            if span is not None and not (isinstance(span, dict) and isinstance(span.get("text"), str)):
                raise StanceError(f"{path}:{n}: {role} must be null or {{\"text\", \"start\", \"end\"}}")
            if span and span["text"].strip():
                out.append(Mention(str(row["doc_id"]), int(row["sent_idx"]), role, row["label"], span["text"],
                                   row["text"]))
        yield out
    if net.stance_rows and not saw_roles:
        raise StanceError(f"{', '.join(map(str, paths))}: no row has holder/target; predict with a model trained "
                          "with spans (model.spans: true)")


def resolve(groups: Iterable[list[Mention]], net: Network) -> list[list[Mention]]:
    """Give each mention its actor key; pronouns only when one named actor precedes them unambiguously."""
    named: dict[str, list[tuple[int, set[str]]]] = defaultdict(list)  # doc -> (sent_idx, actors named there)
    full_names: dict[str, set[str]] = defaultdict(set)  # doc -> multi-word actor keys seen so far
    resolved = []
    for group in groups:
        for m in (m for m in group if not is_pronoun(m.text)):
            key = actor_key(m.text)
            m.key = None if (key,) in TITLE_PHRASES else _surname(key, full_names[m.doc_id]) or None
            if m.key:
                net.spellings[m.key][" ".join(core_words(m.text))] += 1
                if " " in m.key:
                    full_names[m.doc_id].add(m.key)
        for m in (m for m in group if is_pronoun(m.text)):
            m.key = _antecedent(named[m.doc_id], m.sent_idx)
            if m.key is None:
                net.unresolved[m.role] += 1
            else:
                net.resolved_pronouns += 1
        # A denied claim ("the report") is no antecedent for "he" or "they".
        actors = {m.key for m in group
                  if m.key and not is_pronoun(m.text) and (m.role, m.label) != ("target", "deny")}
        if actors:
            named[group[0].doc_id].append((group[0].sent_idx, actors))
        resolved.append(group)
    return resolved


def _surname(key: str, full: set[str]) -> str:
    """"Blair" after "Tony Blair" in the same article is Tony Blair, when no other full name ends so."""
    if not key or " " in key:
        return key
    matches = [f for f in full if f.rsplit(" ", 1)[-1] == key]
    return matches[0] if len(matches) == 1 else key


def _antecedent(history: list[tuple[int, set[str]]], sent_idx: int) -> str | None:
    earlier = [(i, keys) for i, keys in history if i < sent_idx]
    if not earlier:
        return None
    i, keys = earlier[-1]
    return next(iter(keys)) if len(keys) == 1 and sent_idx - i <= PRONOUN_WINDOW else None


def build_network(paths: Sequence[str | Path]) -> Network:
    """Read prediction files and aggregate their stance mentions into edges and actor counts."""
    net = Network()
    for group in resolve(_mentions(paths, net), net):
        roles = {m.role: m for m in group}
        for m in group:
            if m.key:
                net.actor_counts[m.key][f"{m.role}_{m.label}"] += 1
        h, t = roles.get("holder"), roles.get("target")
        if not (h and t and h.key and t.key) or h.key == t.key:
            net.no_roles += 1
            continue
        edge = net.edges.setdefault((h.key, t.key, h.label), {"count": 0, "first_doc": h.doc_id, "examples": []})
        edge["count"] += 1
        edge["last_doc"] = h.doc_id
        if len(edge["examples"]) < EXAMPLES:
            edge["examples"].append(h.sentence)
    return net


def write_edges(net: Network, path: Path) -> None:
    with atomic_open(path) as fh:
        w = csv.writer(fh)
        w.writerow(["holder", "target", "stance", "count", "first_doc_id", "last_doc_id", "examples"])
        for (h, t, stance), e in sorted(net.edges.items(), key=lambda kv: (-kv[1]["count"], kv[0])):
            w.writerow([net.name(h), net.name(t), stance, e["count"], e["first_doc"], e["last_doc"],
                        " | ".join(e["examples"])])


def write_actors(net: Network, path: Path) -> None:
    cols = [f"{role}_{s}" for role in ("holder", "target") for s in STANCES]
    with atomic_open(path) as fh:
        w = csv.writer(fh)
        w.writerow(["actor", *cols, "total"])
        for key, c in sorted(net.actor_counts.items(), key=lambda kv: (-sum(kv[1].values()), kv[0])):
            w.writerow([net.name(key), *(c[col] for col in cols), sum(c.values())])


def to_graph(net: Network) -> Any:
    """A networkx MultiDiGraph: one node per actor, one edge per holder-target-stance."""
    import networkx as nx

    g = nx.MultiDiGraph()
    for key, c in net.actor_counts.items():
        g.add_node(net.name(key), **{k: int(v) for k, v in c.items()}, sentences=int(sum(c.values())))
    for (h, t, stance), e in net.edges.items():
        g.add_edge(net.name(h), net.name(t), key=stance, stance=stance, count=e["count"], colour=COLOURS[stance])
    return g


def plot_network(g: Any, path: Path, top: int) -> None:
    """The ``top`` actors by edge count, drawn with a fixed seed so the same input gives the same picture."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import networkx as nx
    from matplotlib.lines import Line2D

    weight = Counter()
    for u, v, d in g.edges(data=True):
        weight[u] += d["count"]
        weight[v] += d["count"]
    keep = [n for n, _ in sorted(weight.items(), key=lambda kv: (-kv[1], kv[0]))[:top]]
    sub = g.subgraph(keep)
    fig, ax = plt.subplots(figsize=(12, 9))
    pos = nx.spring_layout(nx.Graph(sub), seed=7, k=1.6 / max(1, len(keep)) ** 0.5)
    nx.draw_networkx_nodes(sub, pos, ax=ax, node_size=[120 + 40 * weight[n] for n in sub], node_color="#E0E0E0",
                           edgecolors="#555555")
    nx.draw_networkx_labels(sub, pos, ax=ax, font_size=9)
    for i, stance in enumerate(STANCES):
        edges = [(u, v) for u, v, d in sub.edges(data=True) if d["stance"] == stance]
        widths = [1 + 1.5 * sub[u][v][stance]["count"] ** 0.5 for u, v in edges]
        nx.draw_networkx_edges(sub, pos, edgelist=edges, ax=ax, width=widths, edge_color=COLOURS[stance],
                               arrows=True, arrowsize=14, connectionstyle=f"arc3,rad={0.08 + 0.08 * i}",
                               style=("solid", "dashed", "dotted")[i])
    ax.legend(handles=[Line2D([0], [0], color=COLOURS[s], lw=3, ls=("-", "--", ":")[i], label=s)
                       for i, s in enumerate(STANCES)], loc="lower left")
    ax.set_title(f"Who accuses, denies or supports whom: top {len(keep)} actors (edge width = sentences)")
    ax.axis("off")
    fig.tight_layout()
    with atomic_open(path, "wb", encoding=None) as fh:
        fig.savefig(fh, format="png", dpi=110)
    plt.close(fig)


def network(paths: Sequence[str | Path], out: str | Path, top: int = 30, overwrite: bool = False) -> Network:
    """Aggregate prediction files into ``out``: edges.csv, actors.csv, network.graphml, network.png."""
    import networkx as nx

    out = Path(out)
    check_output_dir(out, ("network",), overwrite, "--out")
    net = build_network(paths)
    g = to_graph(net)
    with output_lock(out), atomic_dir(out) as tmp:
        write_edges(net, tmp / "edges.csv")
        write_actors(net, tmp / "actors.csv")
        with atomic_open(tmp / "network.graphml", "wb", encoding=None) as fh:
            nx.write_graphml(g, fh)
        plot_network(g, tmp / "network.png", top)
    return net


def summary(net: Network) -> str:
    unresolved = sum(net.unresolved.values())
    return (f"{net.rows} rows, {net.stance_rows} stance sentences; {len(net.edges)} edges "
            f"({sum(e['count'] for e in net.edges.values())} sentences with both holder and target), "
            f"{len(net.actor_counts)} actors; pronouns: {net.resolved_pronouns} linked, {unresolved} unresolved "
            f"and left out; {net.no_roles} stance sentences without both roles")

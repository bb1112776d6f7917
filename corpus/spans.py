"""Holder and target spans for the stance sentences: batches for annotators, merge, agreement.

  batches  every accuse/deny/support sentence of data/dev.jsonl and data/test.jsonl, then --n-train
           stance sentences drawn at random (seeded) from data/train/*.jsonl, into first-pass
           batches of --size items (dev and test first, so they are done first); plus second-pass
           batches: --double items, half from dev/test and half from train, each given to an
           annotator who did not do its first pass (double_K holds items of annotator K+1's
           batches; annotator K does batch_NN for NN % --annotators == K and double_K).
  merge    read data/annotation/spans/labels/{batch,double}_*.jsonl, check every span is an exact
           substring of its sentence, report agreement between the passes (exact match and
           SQuAD token-F1 per span type) in agreement.json, list disagreements for adjudication,
           and write spans.jsonl: the first pass, overridden by adjudication.jsonl.
  apply    add `holder` and `target` ({"text", "start", "end"} sentence offsets, or null) to the
           rows of data/dev.jsonl, data/test.jsonl and data/train/*.jsonl that spans.jsonl covers;
           every other byte of those files stays as it was.

An annotator's row: {"id", "holder": str|null, "target": str|null} with optional "holder_occ" /
"target_occ" (which occurrence, from 0, when the words occur more than once) and "note".
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

from corpus.jsonl import read_jsonl, write_jsonl
from stance.errors import StanceError
from stance.io import write_text
from stance.metrics import span_exact, span_token_f1

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "data"
ANN = DATA / "annotation" / "spans"
ROLES = ("holder", "target")
STANCES = ("accuse", "deny", "support")


def held_out_files(data: Path) -> list[Path]:
    return [data / "dev.jsonl", data / "test.jsonl"]


def train_files(data: Path) -> list[Path]:
    return sorted((data / "train").glob("round*.jsonl"))


def stance_rows(paths: list[Path]) -> list[dict]:
    return [{"id": r["id"], "label": r["label"], "text": r["text"]}
            for p in paths for r in read_jsonl(p) if r["label"] in STANCES]


def cmd_batches(args: argparse.Namespace) -> None:
    rng = random.Random(args.seed)
    held = stance_rows(held_out_files(args.data))
    train = stance_rows(train_files(args.data))
    train = rng.sample(train, min(args.n_train, len(train)))
    rng.shuffle(held)
    pool = held + train
    batches = [pool[i:i + args.size] for i in range(0, len(pool), args.size)]
    for i, items in enumerate(batches):
        write_jsonl(args.ann / "batches" / f"batch_{i:02d}.jsonl", items)
    held_ids = {r["id"] for r in held}
    k = args.annotators
    per = args.double // k
    for a in range(k):
        # Items of the next annotator's batches, so nobody labels an item twice.
        theirs = [r for i, b in enumerate(batches) if i % k == (a + 1) % k for r in b]
        h = [r for r in theirs if r["id"] in held_ids]
        t = [r for r in theirs if r["id"] not in held_ids]
        items = rng.sample(h, min(per // 2, len(h))) + rng.sample(t, min(per - per // 2, len(t)))
        rng.shuffle(items)
        write_jsonl(args.ann / "batches" / f"double_{a}.jsonl", items)
    print(f"{len(batches)} first-pass batches ({len(held)} dev/test + {len(train)} train sentences), "
          f"{k} second-pass batches of {per}")


def occurrences(text: str, span: str) -> list[int]:
    """Where ``span`` starts in ``text`` as whole words ("it" is not inside "British"); else anywhere."""
    starts, i = [], text.find(span)
    while i >= 0:
        starts.append(i)
        i = text.find(span, i + 1)

    def whole(i: int) -> bool:
        before = i == 0 or not (text[i - 1].isalnum() and span[0].isalnum())
        j = i + len(span)
        return before and (j == len(text) or not (text[j].isalnum() and span[-1].isalnum()))

    return [i for i in starts if whole(i)] or starts


def locate(text: str, span: str | None, occ: int, where: str) -> dict | None:
    """The span's sentence offsets: the first whole-word occurrence, or the ``occ``-th of all (from 0)."""
    if span is None:
        return None
    if not isinstance(span, str) or not span.strip() or span != span.strip():
        raise StanceError(f"{where}: span {span!r} must be non-empty text without outer spaces, or null")
    # Annotators count every occurrence when they give one (their check was str.count); without one they
    # mean the first whole-word occurrence, never "it" inside "British".
    starts = occurrences(text, span) if not occ else [i for i in range(len(text)) if text.startswith(span, i)]
    if occ >= len(starts):
        raise StanceError(f"{where}: {span!r} (occurrence {occ}) is not in the sentence {text!r}")
    return {"text": span, "start": starts[occ], "end": starts[occ] + len(span)}


def row_spans(r: dict, text: str, where: str) -> dict[str, dict | None]:
    """An annotator's holder and target as sentence offsets; they must not overlap."""
    spans = {role: locate(text, r.get(role), int(r.get(f"{role}_occ") or 0), where) for role in ROLES}
    if spans["holder"] and spans["target"] and spans["holder"]["start"] < spans["target"]["end"] \
            and spans["target"]["start"] < spans["holder"]["end"]:
        raise StanceError(f"{where}: holder and target overlap")
    return spans


def read_pass(paths: list[Path], texts: dict[str, str]) -> dict[str, dict]:
    out: dict[str, dict] = {}
    for path in paths:
        for n, r in enumerate(read_jsonl(path), start=1):
            where = f"{path}:{n} ({r.get('id')})"
            if r.get("id") not in texts:
                raise StanceError(f"{where}: id is not a stance sentence of the batches")
            spans = row_spans(r, texts[r["id"]], where)
            out[r["id"]] = {"id": r["id"], **spans, **({"note": r["note"]} if r.get("note") else {})}
    return out


def label_pass_spans(label: str, decided_by: dict, text: str, where: str) -> dict[str, dict | None]:
    """Holder and target of a round whose labelers also marked spans (round 6 on): those of the pass
    (or adjudication) whose label became the gold label; {} for `none` rows, which lack the fields
    like every unmarked row."""
    if label not in STANCES or "holder" not in decided_by:
        return {}
    return row_spans(decided_by, text, where)


def label_pass_agreement(first: dict[str, dict], second: dict[str, dict], texts: dict[str, str]) -> dict | None:
    """Span agreement between two label passes, over the double items both called the same stance."""
    ids = sorted(i for i in second if first[i]["label"] == second[i]["label"] in STANCES
                 and "holder" in first[i] and "holder" in second[i])
    if not ids:
        return None
    a = {i: row_spans(first[i], texts[i], f"first pass of {i}") for i in ids}
    b = {i: row_spans(second[i], texts[i], f"second pass of {i}") for i in ids}
    return agreement(a, b, {i: first[i]["label"] for i in ids})


def _text(span: dict | None) -> str | None:
    return span["text"] if span else None


def agreement(first: dict[str, dict], second: dict[str, dict], labels: dict[str, str]) -> dict:
    """Exact match and token-F1 between the passes, per span type, over the double-labeled items."""
    ids = sorted(second)
    report: dict = {"n_double": len(ids)}
    for role in ROLES:
        pairs = [(_text(first[i][role]), _text(second[i][role])) for i in ids]
        report[role] = {
            "exact_match": sum(span_exact(a, b) for a, b in pairs) / len(ids),
            "token_f1": sum(span_token_f1(a, b) for a, b in pairs) / len(ids),
            "same_offsets": sum(first[i][role] == second[i][role] for i in ids) / len(ids),
            "by_label": {lab: sum(span_token_f1(_text(first[i][role]), _text(second[i][role]))
                                  for i in ids if labels[i] == lab) / max(1, sum(labels[i] == lab for i in ids))
                         for lab in STANCES},
        }
    return report


def cmd_merge(args: argparse.Namespace) -> None:
    batch_rows = {r["id"]: r for p in sorted((args.ann / "batches").glob("*.jsonl")) for r in read_jsonl(p)}
    texts = {i: r["text"] for i, r in batch_rows.items()}
    labels_dir = args.ann / "labels"
    first = read_pass(sorted(labels_dir.glob("batch_*.jsonl")), texts)
    second = read_pass(sorted(labels_dir.glob("double_*.jsonl")), texts)
    second = {i: r for i, r in second.items() if i in first}
    labels = {i: r["label"] for i, r in batch_rows.items()}
    if second:
        report = agreement(first, second, labels)
        (args.ann / "agreement.json").write_text(json.dumps(report, indent=2) + "\n")
        print(json.dumps({k: v for k, v in report.items()}, indent=1))
    disagree = [{"id": i, "label": labels[i], "text": texts[i], "first": {r: _text(first[i][r]) for r in ROLES},
                 "second": {r: _text(second[i][r]) for r in ROLES}}
                for i in sorted(second) if any(first[i][r] != second[i][r] for r in ROLES)]
    write_jsonl(args.ann / "disagreements.jsonl", disagree)
    adjudicated = read_pass([args.ann / "adjudication.jsonl"], texts) if (args.ann / "adjudication.jsonl").exists() \
        else {}
    final = {**first, **adjudicated}
    write_jsonl(args.ann / "spans.jsonl", [final[i] for i in sorted(final)])
    print(f"{len(final)} sentences with spans ({len(adjudicated)} adjudicated), {len(disagree)} disagreements, "
          f"{len(set(texts) - set(first))} batch items still without a first pass")


def cmd_apply(args: argparse.Namespace) -> None:
    spans = {r["id"]: r for r in read_jsonl(args.ann / "spans.jsonl")}
    for path in held_out_files(args.data) + train_files(args.data):
        lines = path.read_text(encoding="utf-8").split("\n")
        out, n = [], 0
        for line in lines:
            if line.strip() and (row := json.loads(line))["id"] in spans:
                span = spans[row["id"]]
                row.update({role: span[role] for role in ROLES})
                line, n = json.dumps(row, ensure_ascii=False), n + 1
            out.append(line)
        if n:
            write_text(path, "\n".join(out))
        print(f"{path.relative_to(args.data.parent)}: spans on {n} rows")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--ann", type=Path, default=ANN)
    sub = ap.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("batches")
    b.add_argument("--n-train", type=int, default=3000)
    b.add_argument("--size", type=int, default=100)
    b.add_argument("--annotators", type=int, default=5)
    b.add_argument("--double", type=int, default=400)
    b.add_argument("--seed", type=int, default=0)
    sub.add_parser("merge")
    sub.add_parser("apply")
    args = ap.parse_args()
    {"batches": cmd_batches, "merge": cmd_merge, "apply": cmd_apply}[args.cmd](args)

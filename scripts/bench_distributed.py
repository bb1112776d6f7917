"""Benchmark `stance predict --engine ray` against `stance predict` (local) on the same articles.

Real news articles (BBC politics, then PolNeAR's 2016 campaign news, from ../shared, read
only) are taken whole until --sentences sentences, written as 4 JSONL shards, and run
through, in one process and one run:

  local    `stance predict MODEL SHARDS --out FILE` (predict_articles: model load included)
  ray-2    `stance predict MODEL SHARDS --engine ray --actors 2` (1 CPU each)
  ray-1    the same with one actor (--actors sets the list)

Ray starts once, and runs a small first job, before anything is timed, as a cluster would
already be running; that start-up is reported on its own.  Each Ray run includes starting
its actors and loading the model in them.  Reported: row-for-row label agreement of every
Ray run with local, throughput of each run (sentences / wall seconds), the ratio of the
first Ray run to local (goal >= 0.8) and its speed-up over the last, with the load average
before and after and the CPU's bf16/avx flags.

    python scripts/bench_distributed.py --model models/stance-minilm --json bench.json
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

from stance.modeling import StanceClassifier
from stance.predict import predict_articles
from stance.ray_predict import predict_with_ray
from stance.sentences import split_sentences

ROOT = Path(__file__).resolve().parents[1]
RAW = ROOT.parent / "shared" / "data" / "raw"
SOURCES = [RAW / "articles-bbc" / "politics", RAW / "polnear" / "train" / "text"]


def articles(sources: list[Path], min_sentences: int) -> tuple[list[dict], int]:
    """Whole articles, in order, until at least ``min_sentences`` sentences."""
    out, n = [], 0
    for folder in sources:
        for f in sorted(folder.glob("*.txt")):
            raw = f.read_bytes()
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError:
                text = raw.decode("latin-1")  # the BBC files
            out.append({"id": f"{folder.parent.name}/{folder.name}/{f.stem}", "text": text})
            n += len(split_sentences(text))
            if n >= min_sentences:
                return out, n
    return out, n


def write_shards(rows: list[dict], folder: Path, shards: int = 4) -> Path:
    folder.mkdir(parents=True)
    for i in range(shards):
        with open(folder / f"part-{i}.jsonl", "w", encoding="utf-8") as fh:
            fh.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in rows[i::shards])
    return folder


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def cpu_flags() -> list[str]:
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="ascii", errors="replace")
    except OSError:
        return []
    return sorted(set(re.findall(r"\b(avx512_bf16|amx_bf16|avx2)\b", text)))


def run_local(model: Path, shards: Path, out: Path, backend: str) -> tuple[float, dict[tuple, str], object]:
    t0 = time.perf_counter()
    clf = StanceClassifier.load(model, backend=backend)
    summary = predict_articles(clf, [str(shards)], out=out, quiet=True)
    seconds = time.perf_counter() - t0
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    return seconds, {(r["doc_id"], r["sent_idx"]): r["label"] for r in rows}, summary


def run_ray(model: Path, shards: Path, out: Path, backend: str, actors: int) -> tuple[float, dict[tuple, str], object]:
    t0 = time.perf_counter()
    summary = predict_with_ray(model, [str(shards)], str(out), fmt="jsonl", backend=backend, actors=actors,
                               quiet=True)
    seconds = time.perf_counter() - t0
    rows = [json.loads(line) for part in sorted(out.glob("part-*.jsonl")) for line in part.read_text().splitlines()]
    return seconds, {(r["doc_id"], r["sent_idx"]): r["label"] for r in rows}, summary


def measure(args: argparse.Namespace, shards: Path, work: Path) -> tuple[dict, dict, float]:
    """Median seconds and summary of every run over --rounds (runs alternate), their labels, Ray's start-up."""
    import ray

    t0 = time.perf_counter()
    ray.init(num_cpus=os.cpu_count(), include_dashboard=False, logging_level=logging.ERROR, log_to_driver=False)
    counts = [int(a) for a in args.actors.split(",")]
    # Ray's first job also starts its worker pool: pay that before timing, as a running cluster has.
    run_ray(args.model, next(shards.glob("*.jsonl")), work / "warm-up", args.backend, max(counts))
    start_up = time.perf_counter() - t0
    times: dict[str, list[float]] = {}
    labels, summaries = {}, {}
    try:
        for r in range(args.rounds):
            for name in ["local", *(f"ray-{a}" for a in counts)]:
                out = work / f"{name}-{r}"
                if name == "local":
                    seconds, labels[name], summary = run_local(args.model, shards, out, args.backend)
                else:
                    seconds, labels[name], summary = run_ray(args.model, shards, out, args.backend, int(name[4:]))
                times.setdefault(name, []).append(seconds)
                summaries[name] = summary.format()
                print(f"round {r + 1}: {name:<6} {seconds:6.1f} s", file=sys.stderr)
    finally:
        ray.shutdown()
    runs = {name: {"seconds": round(statistics.median(t), 2), "all_seconds": [round(x, 2) for x in t],
                   "summary": summaries[name]} for name, t in times.items()}
    return runs, labels, start_up


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, default=ROOT / "models" / "stance-minilm")
    ap.add_argument("--articles", type=Path, action="append", help="folders of .txt articles [default: BBC, PolNeAR]")
    ap.add_argument("--sentences", type=int, default=20_000)
    ap.add_argument("--backend", default="auto")
    ap.add_argument("--actors", default="2,1", help="actor counts of the Ray runs, in order [default: 2,1]")
    ap.add_argument("--rounds", type=int, default=1, help="runs of each; the median is reported")
    ap.add_argument("--json", type=Path, help="also write the results here")
    args = ap.parse_args()

    rows, n = articles(args.articles or SOURCES, args.sentences)
    result: dict = {"articles": len(rows), "sentences": n, "cpu_flags": cpu_flags(), "cpus": os.cpu_count(),
                    "load_before": load_average()}
    with tempfile.TemporaryDirectory(prefix="stance-bench-ray-") as tmp:
        work = Path(tmp)
        result["runs"], labels, start_up = measure(args, write_shards(rows, work / "in"), work)
    result["load_after"] = load_average()
    result["ray_start_up_seconds"] = round(start_up, 2)
    local = labels.pop("local")
    same = {name: sum(run.get(k) == v for k, v in local.items()) for name, run in labels.items()}
    result.update(local_rows=len(local), same_labels=same,
                  identical=all(n == len(local) == len(labels[name]) for name, n in same.items()))
    report(result)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")


def report(result: dict) -> None:
    runs, n = result["runs"], result["sentences"]
    rate = {name: n / r["seconds"] for name, r in runs.items()}
    ray_runs = [name for name in runs if name != "local"]
    first, last = ray_runs[0], ray_runs[-1]
    result["sentences_per_second"] = {name: round(x, 1) for name, x in rate.items()}
    result["ratio_to_local"] = {first: round(rate[first] / rate["local"], 3)}
    result["speedup"] = {f"{first}/{last}": round(rate[first] / rate[last], 3)}
    print(f"{result['articles']} articles, {n} sentences; {result['cpus']} CPUs ({', '.join(result['cpu_flags'])}); "
          f"load average {result['load_before']} -> {result['load_after']}")
    for name, r in runs.items():
        print(f"{name:<6} {r['seconds']:8.1f} s  {rate[name]:7.1f} sentences/s   ({r['summary']})")
    print(f"ray start-up and a first small job (once per cluster): {result['ray_start_up_seconds']:.1f} s")
    for name, same in result["same_labels"].items():
        print(f"labels: {name} has {same} of {result['local_rows']} rows as local has them")
    print(f"labels {'identical' if result['identical'] else 'NOT identical'}; "
          f"{first} / local throughput: {result['ratio_to_local'][first]:.2f}x; "
          f"{first} / {last} speed-up: {result['speedup'][f'{first}/{last}']:.2f}x")


if __name__ == "__main__":
    main()

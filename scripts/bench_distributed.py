"""Benchmark `stance predict --engine ray` against `stance predict` (local) on the same articles.

Real news articles (BBC politics, then PolNeAR's 2016 campaign news, from ../shared, read
only) are taken whole until --sentences sentences, written as 4 JSONL shards, and run
through, in one process and one run, for each backend of --backends:

  local         `stance predict MODEL SHARDS --out FILE` (predict_articles; model load included)
  local w2048   the same with windows of 2,048 sentences instead of 1,024 (other batches)
  ray-2         `stance predict MODEL SHARDS --engine ray --actors 2` (1 CPU each)
  ray-1         the same with one actor (--actors sets the list)

Ray starts once, and runs a small first job, before anything is timed, as a cluster would
already be running; that start-up is reported on its own.  Each Ray run includes starting
its actors and loading the model in them.  Reported: row-for-row label agreement of every
run with local, throughput (sentences / wall seconds), the ratio of the first Ray run to
local (goal >= 0.8) and its speed-up over the last, the rate of splitting alone on one
core, with the load average before and after and the CPU's bf16/avx flags.

Why "local w2048": other windows put a sentence in other batches.  Every backend `auto`
may pick scores a sentence the same in any batch (int8 activations are quantized per token,
stance/quantize.py), so every run must give local's labels row for row; int8 exports from
before that change, with one scale per batch, moved near-tie labels here.

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


def articles(sources: list[Path], min_sentences: int) -> tuple[list[dict], int, float]:
    """Whole articles, in order, until at least ``min_sentences`` sentences; and the seconds splitting took."""
    out, n, split_seconds = [], 0, 0.0
    for folder in sources:
        for f in sorted(folder.glob("*.txt")):
            raw = f.read_bytes()
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError:
                text = raw.decode("latin-1")  # the BBC files
            out.append({"id": f"{folder.parent.name}/{folder.name}/{f.stem}", "text": text})
            t0 = time.perf_counter()
            n += len(split_sentences(text))
            split_seconds += time.perf_counter() - t0
            if n >= min_sentences:
                return out, n, split_seconds
    return out, n, split_seconds


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


def run(name: str, model: Path, shards: Path, out: Path, backend: str) -> tuple[float, dict[tuple, str], str]:
    """One run: wall seconds, labels by (doc_id, sent_idx), summary line."""
    t0 = time.perf_counter()
    if name.startswith("ray-"):
        summary = predict_with_ray(model, [str(shards)], str(out), fmt="jsonl", backend=backend,
                                   actors=int(name[4:]), quiet=True)
        lines = [line for part in sorted(out.glob("part-*.jsonl")) for line in part.read_text().splitlines()]
    else:
        clf = StanceClassifier.load(model, backend=backend)
        summary = predict_articles(clf, [str(shards)], out=out, quiet=True, window=2048 if "w2048" in name else 1024)
        lines = out.read_text(encoding="utf-8").splitlines()
    seconds = time.perf_counter() - t0
    rows = map(json.loads, lines)
    return seconds, {(r["doc_id"], r["sent_idx"]): r["label"] for r in rows}, summary.format()


def measure(args: argparse.Namespace, shards: Path, work: Path) -> tuple[dict, dict, float]:
    """Median seconds and summary of every run over --rounds (runs alternate), their labels, Ray's start-up."""
    import ray

    t0 = time.perf_counter()
    ray.init(num_cpus=os.cpu_count(), include_dashboard=False, logging_level=logging.ERROR, log_to_driver=False)
    counts = [int(a) for a in args.actors.split(",")]
    backends = args.backends.split(",")
    # Ray's first job also starts its worker pool: pay that before timing, as a running cluster has.
    run(f"ray-{max(counts)}", args.model, next(shards.glob("*.jsonl")), work / "warm-up", backends[0])
    start_up = time.perf_counter() - t0
    times: dict[str, list[float]] = {}
    labels, summaries = {}, {}
    try:
        for r in range(args.rounds):
            for backend in backends:
                for kind in ["local", "local w2048", *(f"ray-{a}" for a in counts)]:
                    name = f"{backend} {kind}"
                    seconds, labels[name], summaries[name] = run(kind, args.model, shards, work / f"{name}-{r}",
                                                                 backend)
                    times.setdefault(name, []).append(seconds)
                    print(f"round {r + 1}: {name:<20} {seconds:6.1f} s", file=sys.stderr)
    finally:
        ray.shutdown()
    runs = {name: {"seconds": round(statistics.median(t), 2), "all_seconds": [round(x, 2) for x in t],
                   "summary": summaries[name]} for name, t in times.items()}
    return runs, labels, start_up


def sizes(shards: Path, jsonl: Path, n: int) -> dict[str, float]:
    """Bytes of input per article, and of output per sentence as JSONL and as Parquet (for the projection)."""
    import pyarrow.json as pj
    import pyarrow.parquet as pq

    inputs = list(shards.glob("*.jsonl"))
    articles = sum(len(f.read_text(encoding="utf-8").splitlines()) for f in inputs)
    pq.write_table(pj.read_json(jsonl), jsonl.with_suffix(".parquet"))
    return {"input_per_article": round(sum(f.stat().st_size for f in inputs) / articles),
            "jsonl_per_sentence": round(jsonl.stat().st_size / n), "parquet_per_sentence":
            round(jsonl.with_suffix(".parquet").stat().st_size / n)}


def compare(result: dict, labels: dict[str, dict], counts: list[int]) -> None:
    """Per backend: labels equal to its local run, throughput ratio to local, speed-up of more actors."""
    n = result["sentences"]
    for name, r in result["runs"].items():
        r["sentences_per_second"] = round(n / r["seconds"], 1)
        local = labels[name.split(" ")[0] + " local"]
        r["same_labels_as_local"] = sum(labels[name].get(k) == v for k, v in local.items())
        r["rows"] = len(labels[name])
    for backend in dict.fromkeys(name.split(" ")[0] for name in result["runs"]):
        rate = {name.split(" ", 1)[1]: r["sentences_per_second"] for name, r in result["runs"].items()
                if name.startswith(backend + " ")}
        first, last = f"ray-{counts[0]}", f"ray-{counts[-1]}"
        result.setdefault("ratio_to_local", {})[f"{backend} {first}"] = round(rate[first] / rate["local"], 3)
        result.setdefault("speedup", {})[f"{backend} {first}/{last}"] = round(rate[first] / rate[last], 3)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, default=ROOT / "models" / "stance-minilm")
    ap.add_argument("--articles", type=Path, action="append", help="folders of .txt articles [default: BBC, PolNeAR]")
    ap.add_argument("--sentences", type=int, default=20_000)
    ap.add_argument("--backends", default="auto,onnx", help="backends to run everything with [default: auto,onnx]")
    ap.add_argument("--actors", default="2,1", help="actor counts of the Ray runs, in order [default: 2,1]")
    ap.add_argument("--rounds", type=int, default=1, help="runs of each; the median is reported")
    ap.add_argument("--json", type=Path, help="also write the results here")
    args = ap.parse_args()

    rows, n, split_seconds = articles(args.articles or SOURCES, args.sentences)
    result: dict = {"articles": len(rows), "sentences": n, "cpu_flags": cpu_flags(), "cpus": os.cpu_count(),
                    "load_before": load_average(), "split_sentences_per_second_one_core": round(n / split_seconds, 1)}
    with tempfile.TemporaryDirectory(prefix="stance-bench-ray-") as tmp:
        work = Path(tmp)
        shards = write_shards(rows, work / "in")
        result["runs"], labels, start_up = measure(args, shards, work)
        result["bytes"] = sizes(shards, work / f"{args.backends.split(',')[0]} local-0", n)
    result["load_after"] = load_average()
    result["ray_start_up_seconds"] = round(start_up, 2)
    compare(result, labels, [int(a) for a in args.actors.split(",")])
    report(result)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")


def report(result: dict) -> None:
    n = result["sentences"]
    print(f"{result['articles']} articles, {n} sentences; {result['cpus']} CPUs ({', '.join(result['cpu_flags'])}); "
          f"load average {result['load_before']} -> {result['load_after']}")
    for name, r in result["runs"].items():
        print(f"{name:<20} {r['seconds']:8.1f} s {r['sentences_per_second']:7.1f} sentences/s, labels as local: "
              f"{r['same_labels_as_local']}/{n}   ({r['summary']})")
    print(f"ray start-up and a first small job (once per cluster): {result['ray_start_up_seconds']:.1f} s; "
          f"splitting alone: {result['split_sentences_per_second_one_core']:.0f} sentences/s on one core; "
          f"bytes: {result['bytes']}")
    for (name, ratio), (pair, speedup) in zip(result["ratio_to_local"].items(), result["speedup"].items()):
        print(f"{name} / local throughput: {ratio:.2f}x; {pair} speed-up: {speedup:.2f}x")


if __name__ == "__main__":
    main()

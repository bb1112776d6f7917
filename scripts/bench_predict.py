"""Benchmark `stance predict` against transformers.pipeline, as whole processes.

Same trained model, same real news sentences (BBC politics articles from
../shared, split by the project's splitter), one run, processes alternated:

  A  transformers.pipeline("text-classification", model=DIR, truncation=True)
     called on the list of sentences with batch_size=32 (what a user would write)
  B  stance predict MODEL ARTICLES   (default settings: reads, splits, classifies, writes;
     with --min-score 0, i.e. argmax labels like A, so agreement compares backends only)
  C  stance predict --backend X      for every backend

Each process is timed from start to exit (imports and model loading included)
and the median over --rounds is reported, with each run's label agreement with
the torch fp32 run.  Then peak RSS of `stance predict` on 1k and 50k sentences.

    python scripts/bench_predict.py --model models/stance-minilm
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from stance.backends import BACKENDS, ONNX_FILES
from stance.sentences import split_sentences

ROOT = Path(__file__).resolve().parents[1]

PIPELINE = """
import json, sys
from transformers import pipeline
sentences = json.load(open(sys.argv[2]))
clf = pipeline("text-classification", model=sys.argv[1], truncation=True)
out = clf(sentences, batch_size=32)
json.dump([o["label"] for o in out], open(sys.argv[3], "w"))
"""


def timed(cmd: list[str]) -> tuple[float, int]:
    """Wall seconds and peak RSS (MiB) of one child process."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - t0
    err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"failed: {' '.join(cmd)}\n{err[-2000:]}")
    return seconds, usage.ru_maxrss // 1024


def read_labels(path: Path) -> list[str]:
    if path.suffix == ".json":
        return json.loads(path.read_text())
    return [json.loads(x)["label"] for x in path.read_text().splitlines()]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, default=ROOT / "models" / "stance-minilm")
    ap.add_argument("--articles", type=Path,
                    default=ROOT.parent / "shared" / "data" / "raw" / "articles-bbc" / "politics")
    ap.add_argument("--min-sentences", type=int, default=3000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--rss-sizes", default="1000,50000", help="sentence counts for the peak-RSS runs ('' to skip)")
    ap.add_argument("--backends", default=",".join(BACKENDS),
                    help="comma-separated backends for the C runs (those without ONNX files are skipped); "
                         "torch is the reference the agreement column compares with")
    ap.add_argument("--json", type=Path, help="also write the results here")
    ap.add_argument("--baseline-model", type=Path,
                    help="also run stance predict (default) with this model, e.g. one without a span head, "
                         "and print B's throughput over it")
    args = ap.parse_args()
    backends = args.backends.split(",")
    if "torch" not in backends or set(backends) - set(BACKENDS):
        ap.error(f"--backends: torch plus any of {', '.join(BACKENDS)}")

    work = Path(tempfile.mkdtemp(prefix="stance-bench-"))
    try:
        # The same sentences for everyone: whole articles until we have enough.
        arts = work / "articles"
        arts.mkdir()
        sentences: list[str] = []
        texts = []
        for f in sorted(args.articles.glob("*.txt")):
            text = f.read_text(encoding="latin-1")
            texts.append(text)
            (arts / f.name).write_text(text, encoding="utf-8")
            sentences += [s.text for s in split_sentences(text)]
            if len(sentences) >= args.min_sentences:
                break
        (work / "sentences.json").write_text(json.dumps(sentences))
        n = len(sentences)
        # --min-score 0: plain argmax like the pipeline, so the agreement column measures the
        # backends alone (the model's dev-chosen none threshold costs no time either way).
        stance = [sys.executable, "-m", "stance.cli", "predict", str(args.model), str(arts), "--quiet",
                  "--min-score", "0"]
        runs = {"A pipeline": [sys.executable, "-c", PIPELINE, str(args.model), str(work / "sentences.json"),
                               str(work / "A pipeline.json")],
                "B stance predict (default)": stance + ["--out", str(work / "B stance predict (default).jsonl")]}
        for b in backends:
            if b in ONNX_FILES and not (args.model / "onnx" / ONNX_FILES[b]).is_file():
                continue
            runs[f"C --backend {b}"] = stance + ["--backend", b, "--out", str(work / f"C --backend {b}.jsonl")]
        if args.baseline_model:  # the same command on another model directory, alternated with the rest
            base = [*stance[:4], str(args.baseline_model), *stance[5:]]
            runs["D baseline model (default)"] = base + ["--out", str(work / "D baseline model (default).jsonl")]

        results: dict = {}
        ratio = None
        if args.rounds > 0:
            times: dict[str, list[float]] = {k: [] for k in runs}
            for r in range(args.rounds):
                for name, cmd in runs.items():  # alternate, so drift in machine load hits all alike
                    times[name].append(timed(cmd)[0])
                    print(f"round {r + 1}: {name:<30} {times[name][-1]:6.1f} s", file=sys.stderr)
            out_file = {name: work / (name + (".json" if name.startswith("A") else ".jsonl")) for name in runs}
            ref = read_labels(out_file["C --backend torch"])
            for name in runs:
                labels = read_labels(out_file[name])
                assert len(labels) == n, (name, len(labels), n)
                sec = statistics.median(times[name])
                # Agreement with fp32 compares backends of one model; another model's labels are its own.
                same = not name.startswith("D ")
                results[name] = {"seconds": round(sec, 2), "sentences_per_second": round(n / sec, 1),
                                 "agreement_with_fp32": sum(a == b for a, b in zip(labels, ref)) / n if same else None}
            a = results["A pipeline"]["sentences_per_second"]
            print(f"\n{n} sentences from {len(texts)} articles; median of {args.rounds} rounds; "
                  f"whole processes (start-up and model load included); {os.cpu_count()} CPU cores")
            print(f"{'run':<32}{'seconds':>9}{'sent/s':>9}{'vs A':>7}{'agree fp32':>12}")
            for name, m in results.items():
                agree = "-" if m["agreement_with_fp32"] is None else f"{m['agreement_with_fp32']:.2%}"
                print(f"{name:<32}{m['seconds']:>9.1f}{m['sentences_per_second']:>9.1f}"
                      f"{m['sentences_per_second'] / a:>6.2f}x{agree:>12}")
            ratio = results["B stance predict (default)"]["sentences_per_second"] / a
            print(f"\nB/A throughput ratio: {ratio:.2f}x")
            if "D baseline model (default)" in results:
                over = results["B stance predict (default)"]["sentences_per_second"] / \
                    results["D baseline model (default)"]["sentences_per_second"]
                print(f"B/D throughput ratio (this model over the baseline model): {over:.2f}x")

        rss = {}
        for size in [int(x) for x in args.rss_sizes.split(",") if x]:
            # Repeat the articles (new ids) until `size` sentences, as one JSONL input.
            src = work / f"rss-{size}.jsonl"
            count, i = 0, 0
            with open(src, "w") as fh:
                while count < size:
                    text = texts[i % len(texts)]
                    sents = split_sentences(text)
                    if count + len(sents) > size:
                        keep = sents[: size - count]
                        text = text[: keep[-1].end] if keep else ""
                        sents = keep
                    fh.write(json.dumps({"id": f"doc{i}", "text": text}) + "\n")
                    count += len(sents)
                    i += 1
            sec, mib = timed([sys.executable, "-m", "stance.cli", "predict", str(args.model), str(src),
                              "--quiet", "--out", str(work / f"rss-{size}.out.jsonl")])
            rss[size] = {"peak_rss_mib": mib, "seconds": round(sec, 1)}
            print(f"peak RSS, {size:>6} sentences: {mib} MiB ({sec:.0f} s)")
        if len(rss) >= 2:
            lo, hi = rss[min(rss)]["peak_rss_mib"], rss[max(rss)]["peak_rss_mib"]
            print(f"peak RSS ratio {max(rss)}/{min(rss)} sentences: {hi / lo:.3f}")
        if args.json:
            args.json.write_text(json.dumps({"n": n, "rounds": args.rounds, "results": results,
                                             "b_over_a": ratio, "rss": rss}, indent=2))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

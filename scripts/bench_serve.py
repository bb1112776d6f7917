"""Benchmark `stance serve` under concurrent clients, against `stance predict` on the same sentences.

One article of --sentences real news sentences (from data/test.jsonl) is sent as a one-article
request by 1, 8 and 32 clients at once (--clients), each client sending its next request as
soon as it has the answer, for --seconds per level, to a server started here on 127.0.0.1.
Reported per level: requests, sentences/s, p50/p95/p99 latency, errors (a status other than
200, a wrong row count, or a failed connection), and the server's peak RSS.  Then the same
article, --predict-copies times, goes through `stance predict` (its own sentences/s, model
loading excluded as the server's is), and the ratio of the last level's throughput to it.

    python scripts/bench_serve.py --model models/stance-minilm
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import urlparse

from stance.sentences import split_sentences
from stance.testing import running_server

ROOT = Path(__file__).resolve().parents[1]


def make_article(n: int) -> str:
    """``n`` test-split sentences as one article, each kept only if the splitter still finds it alone."""
    article, count = "", 0
    for line in (ROOT / "data" / "test.jsonl").read_text(encoding="utf-8").splitlines():
        candidate = f"{article} {json.loads(line)['text'].strip()}".strip()
        if len(split_sentences(candidate)) == count + 1:
            article, count = candidate, count + 1
        if count == n:
            return article
    raise SystemExit(f"data/test.jsonl: fewer than {n} sentences that split cleanly")


def client(url: str, body: bytes, n_rows: int, deadline: float, out: list, errors: list) -> None:
    """Send requests one after another until ``deadline``; record latencies and errors."""
    u = urlparse(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=60)
    while time.monotonic() < deadline:
        t0 = time.perf_counter()
        try:
            conn.request("POST", "/v1/predict", body, {"Content-Type": "application/json"})
            resp = conn.getresponse()
            data = resp.read()
            ok = resp.status == 200 and len(json.loads(data)["rows"]) == n_rows
        except (OSError, http.client.HTTPException, ValueError, KeyError):
            ok = False
            conn.close()
            conn = http.client.HTTPConnection(u.hostname, u.port, timeout=60)
        (out if ok else errors).append(time.perf_counter() - t0)
    conn.close()


def run_level(url: str, body: bytes, n_rows: int, clients: int, seconds: float) -> dict:
    latencies: list[float] = []
    errors: list[float] = []
    deadline = time.monotonic() + seconds
    t0 = time.perf_counter()
    threads = [threading.Thread(target=client, args=(url, body, n_rows, deadline, latencies, errors))
               for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - t0
    q = statistics.quantiles(latencies, n=100, method="inclusive") if len(latencies) > 1 else latencies * 99
    return {"clients": clients, "requests": len(latencies), "errors": len(errors), "seconds": elapsed,
            "sentences_per_s": len(latencies) * n_rows / elapsed,
            "p50_ms": 1000 * q[49] if q else float("nan"), "p95_ms": 1000 * q[94] if q else float("nan"),
            "p99_ms": 1000 * q[98] if q else float("nan")}


def peak_rss_mib(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"VmHWM:\s+(\d+) kB", status)[1]) / 1024


def predict_rate(model: Path, article: str, copies: int, backend: str) -> tuple[float, str]:
    """sentences/s of `stance predict` (its own summary, model loading excluded) on ``copies`` of the article."""
    with tempfile.TemporaryDirectory(prefix="stance-bench-serve-") as tmp:
        src = Path(tmp) / "articles.jsonl"
        src.write_text("".join(json.dumps({"id": f"a{i}", "text": article}) + "\n" for i in range(copies)))
        proc = subprocess.run([sys.executable, "-m", "stance.cli", "predict", str(model), str(src), "--quiet",
                               "--backend", backend, "--out", str(Path(tmp) / "out.jsonl")],
                              capture_output=True, text=True, timeout=3600)
    if proc.returncode != 0:
        raise SystemExit(f"stance predict failed: {proc.stderr[-2000:]}")
    summary = proc.stderr.strip().splitlines()[-1]
    return float(re.search(r"([\d.]+) sentences/s", summary)[1]), summary


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, default=ROOT / "models" / "stance-minilm")
    ap.add_argument("--clients", default="1,8,32", help="comma-separated concurrency levels")
    ap.add_argument("--seconds", type=float, default=20.0, help="per level")
    ap.add_argument("--sentences", type=int, default=30, help="sentences in the article")
    ap.add_argument("--predict-copies", type=int, default=100, help="copies of the article for stance predict")
    ap.add_argument("--backend", default="auto")
    ap.add_argument("--json", type=Path, help="also write the results here")
    args = ap.parse_args()
    if not (args.model / "config.json").is_file():
        raise SystemExit(f"{args.model}: no trained model there; run `stance train configs/base.yaml` or pass --model")

    article = make_article(args.sentences)
    body = json.dumps({"articles": [{"id": "bench", "text": article}]}).encode()
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}; {os.cpu_count()} CPU cores",
          flush=True)
    levels = []
    with running_server(args.model, "--backend", args.backend, "--no-access-log") as (proc, url):
        run_level(url, body, args.sentences, 1, min(2.0, args.seconds))  # warm-up, not counted
        for c in (int(x) for x in args.clients.split(",")):
            levels.append(run_level(url, body, args.sentences, c, args.seconds))
            print(f"{c} clients done", file=sys.stderr, flush=True)
        rss = peak_rss_mib(proc.pid)
    rate, summary = predict_rate(args.model, article, args.predict_copies, args.backend)
    print(f"{'clients':>7} {'requests':>8} {'sent/s':>8} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'errors':>6}")
    for lv in levels:
        print(f"{lv['clients']:>7} {lv['requests']:>8} {lv['sentences_per_s']:>8.1f} {lv['p50_ms']:>8.0f} "
              f"{lv['p95_ms']:>8.0f} {lv['p99_ms']:>8.0f} {lv['errors']:>6}")
    print(f"server peak RSS: {rss:.0f} MiB")
    print(f"stance predict, same sentences x{args.predict_copies}: {rate:.1f} sentences/s ({summary})")
    print(f"ratio {levels[-1]['clients']} clients / predict: {levels[-1]['sentences_per_s'] / rate:.2f}x")
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    if args.json:
        args.json.write_text(json.dumps({"levels": levels, "server_peak_rss_mib": rss, "predict_sentences_per_s": rate,
                                         "load_average_after": os.getloadavg()}, indent=2))


if __name__ == "__main__":
    main()

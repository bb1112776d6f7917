"""Training-step speed: fp32 against bf16 autocast (train.precision), or one backbone against another,
in the same run.

Times full training steps (forward, class-weighted loss, backward, AdamW) of the
real backbone on batches of shipped training sentences, the two precisions
interleaved batch by batch so that anything else slowing the machine hits both
alike.  Prints seconds per step for each and the ratio fp32 / bf16.

    python scripts/bench_train.py                 # 12 batches of 32 after 2 warm-up
    python scripts/bench_train.py --steps 30 --batch-size 16
    python scripts/bench_train.py --model models/backbones/all-mpnet-base-v2 --against minilm-l6
        # the teacher's step against MiniLM's, both at train.precision=auto

bf16 only pays where the CPU multiplies bfloat16 in hardware (avx512_bf16 / AMX);
the script says whether this one does (what train.precision=auto decides).
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="minilm-l6")
    ap.add_argument("--data", type=Path, default=ROOT / "data" / "train" / "round1.jsonl")
    ap.add_argument("--steps", type=int, default=12)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--against", metavar="MODEL",
                    help="compare --model with this backbone (both at --precision) instead of fp32 with bf16")
    ap.add_argument("--precision", choices=("auto", "fp32", "bf16"), default="auto", help="with --against")
    args = ap.parse_args()

    import torch

    from stance.modeling import load_backbone
    from stance.trainer import cpu_has_native_bf16, resolve_precision

    rows = [json.loads(line) for line in args.data.open(encoding="utf-8") if line.strip()]
    rng = random.Random(args.seed)
    n = args.warmup + args.steps
    batches = [[r["text"] for r in rng.sample(rows, args.batch_size)] for _ in range(n)]
    labels = [torch.randint(0, 4, (args.batch_size,), generator=torch.Generator().manual_seed(i)) for i in range(n)]

    # (name, backbone, precision) of the two variants, timed batch by batch in alternating order.
    if args.against:
        precision = resolve_precision(args.precision)
        variants = [(args.model, args.model, precision), (args.against, args.against, precision)]
    else:
        variants = [("fp32", args.model, "fp32"), ("bf16", args.model, "bf16")]
    models = {}
    for name, backbone, precision in variants:
        torch.manual_seed(args.seed)
        model, tok = load_backbone(backbone, ["accuse", "deny", "support", "none"])
        model.train()
        models[name] = (model, tok, torch.optim.AdamW(model.parameters(), lr=1e-4), precision)
    times: dict[str, list[float]] = {name: [] for name, _, _ in variants}
    for i, texts in enumerate(batches):
        for name, _, _ in variants if i % 2 == 0 else variants[::-1]:
            model, tok, opt, precision = models[name]
            enc = tok(texts, padding=True, truncation=True, max_length=128, return_tensors="pt")
            t0 = time.perf_counter()
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
                loss = torch.nn.functional.cross_entropy(model(**enc).logits.float(), labels[i])
            loss.backward()
            opt.step()
            opt.zero_grad()
            if i >= args.warmup:
                times[name].append(time.perf_counter() - t0)
    (a, _, pa), (b, _, pb) = variants
    ta, tb = statistics.median(times[a]), statistics.median(times[b])
    print(f"threads {torch.get_num_threads()}; native bf16 on this CPU: {cpu_has_native_bf16()} "
          f"(train.precision=auto -> {resolve_precision('auto')})")
    la, lb = (n if n == p else f"{n} ({p})" for n, p in ((a, pa), (b, pb)))
    print(f"{la} {ta:.3f} s/step, {lb} {tb:.3f} s/step (median of {args.steps}, batch {args.batch_size})")
    print(f"ratio {a}/{b}: {ta / tb:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())

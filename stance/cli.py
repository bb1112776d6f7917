"""Command line: parses arguments and calls the library; no logic lives here."""

from __future__ import annotations

import functools
import signal
import sys
from pathlib import Path
from typing import Annotated

import typer

from stance.errors import StanceError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Find who accuses, who denies and who supports in news sentences.",
)


class _Terminated(KeyboardInterrupt):
    """SIGTERM (from `kill`, a scheduler, a container stop), unwound like Ctrl-C."""


def _on_sigterm(signum: int, frame: object) -> None:
    raise _Terminated()


def _user_errors(fn):
    """Turn StanceError into one line on stderr and exit code 2, with no traceback.

    SIGTERM is handled like Ctrl-C: the stack unwinds, so temporary outputs are
    removed, locks released, and checkpoints or a resumable partial output kept.
    """

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        previous = signal.signal(signal.SIGTERM, _on_sigterm)
        try:
            return fn(*args, **kwargs)
        except StanceError as e:
            typer.echo(f"error: {e}", err=True)
            raise typer.Exit(2) from None
        except KeyboardInterrupt as e:
            signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second TERM must not cut the cleanup short
            typer.echo("interrupted; nothing was written over existing outputs "
                       "(train and predict --out continue with --resume)", err=True)
            raise typer.Exit(143 if isinstance(e, _Terminated) else 130) from None
        finally:
            signal.signal(signal.SIGTERM, previous)

    return wrapper


Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")]
Overwrite = Annotated[bool, typer.Option(
    "--overwrite", help="Replace an earlier output of this command at the target (never anything else).")]
Backend = Annotated[str, typer.Option(
    "--backend",
    help="auto (fastest backend measured to agree with fp32 on >=99% of test sentences), "
         "torch, torch-int8, onnx, onnx-int8.")]


@app.command()
@_user_errors
def train(
    config: Annotated[Path, typer.Argument(help="YAML config, e.g. configs/base.yaml.")],
    set_: Annotated[list[str] | None, typer.Option("--set", help="Override a key: --set train.epochs=3")] = None,
    output_dir: Annotated[Path | None, typer.Option("--output-dir", "-o", help="Overrides output_dir.")] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue from the last checkpoint.")] = False,
    overwrite: Overwrite = False,
    quiet: Quiet = False,
) -> None:
    """Fine-tune a model and save a Hugging Face model directory."""
    from stance.config import load_config
    from stance.train import summarize
    from stance.train import train as run_train

    cfg = load_config(config, set_ or [])
    metrics = run_train(cfg, output_dir=output_dir, resume=resume, quiet=quiet, overwrite=overwrite)
    typer.echo(summarize(metrics))


@app.command()
@_user_errors
def evaluate(
    model: Annotated[Path, typer.Argument(help="Trained model directory.")],
    data: Annotated[list[Path], typer.Argument(help="Labeled JSONL/CSV files with text and label columns.")],
    out: Annotated[Path | None, typer.Option("--out", help="Report folder \\[default: MODEL/eval].")] = None,
    text_column: Annotated[str, typer.Option(help="Name of the text column.")] = "text",
    label_column: Annotated[str, typer.Option(help="Name of the label column.")] = "label",
    batch_size: Annotated[int, typer.Option(help="Sentences per forward pass.")] = 64,
    backend: Backend = "torch",
    overwrite: Overwrite = False,
    quiet: Quiet = False,
) -> None:
    """Per-class precision/recall/F1, macro-F1, confusion matrix (JSON + PNG), errors."""
    from stance.evaluate import evaluate as run_eval
    from stance.metrics import format_summary, format_table

    out = out or model / "eval"
    results = run_eval(model, data, out, text_column, label_column, batch_size, backend=backend, quiet=quiet,
                       overwrite=overwrite)
    for stem, m in results.items():
        typer.echo(f"\n== {stem} ({m['data']})\n{format_table(m)}")
    if len(results) > 1:
        typer.echo(f"\n{format_summary(results)}")
    typer.echo(f"\nreports written to {out}")


@app.command()
@_user_errors
def predict(
    model: Annotated[Path, typer.Argument(help="Trained model directory.")],
    inputs: Annotated[list[str], typer.Argument(help=".txt/.html files, folders, .jsonl (id, text), or - for stdin; "
                                                     "--engine ray: .jsonl/.parquet files, folders or URIs.")],
    out: Annotated[str | None, typer.Option(
        "--out", "-o", help="Output file \\[default: stdout]; --engine ray: a directory or URI for parts.")] = None,
    fmt: Annotated[str | None, typer.Option(
        "--format", help="jsonl, csv or html (a report to open in a browser) \\[default: from --out suffix]; "
                         "--engine ray: parquet (default) or jsonl.")] = None,
    batch_size: Annotated[int, typer.Option(help="Sentences per forward pass.")] = 64,
    min_score: Annotated[float | None, typer.Option(
        help="Predictions scoring below this become 'none' \\[default: the model's, chosen on dev; 0 = argmax].",
        show_default=False)] = None,
    backend: Backend = "auto",
    resume: Annotated[bool, typer.Option(
        "--resume", help="Continue an interrupted run on the same --out: skip finished articles, append the rest."
    )] = False,
    max_article_mb: Annotated[float, typer.Option(
        help="Skip (and count) an article over this many MB of text; an HTML page may be 4 times this.")] = 5.0,
    engine: Annotated[str, typer.Option(help="local (this process) or ray (Ray Data, on this machine or a cluster).")
                      ] = "local",
    address: Annotated[str | None, typer.Option(
        help="--engine ray: auto or ray://host:port \\[default: start Ray on this machine's cores].")] = None,
    actors: Annotated[int | None, typer.Option(
        help="--engine ray: model copies \\[default: cluster CPUs // --cpus-per-actor].")] = None,
    cpus_per_actor: Annotated[int, typer.Option(help="--engine ray: CPUs (threads) of each actor.")] = 1,
    gpus_per_actor: Annotated[float, typer.Option(help="--engine ray: GPUs of each actor (with --backend torch).")] = 0,
    quiet: Quiet = False,
) -> None:
    """Split articles into sentences and classify each one."""
    from stance.articles import max_article_bytes_from_mb
    from stance.modeling import StanceClassifier
    from stance.predict import predict_articles
    from stance.ray_predict import check_engine, predict_with_ray

    max_article_bytes = max_article_bytes_from_mb(max_article_mb)
    check_engine(engine, resume=resume, address=address, actors=actors, cpus_per_actor=cpus_per_actor,
                 gpus_per_actor=gpus_per_actor)
    if engine == "ray":
        summary = predict_with_ray(model, inputs, out, fmt, address, backend, batch_size, min_score, actors,
                                   cpus_per_actor, gpus_per_actor, max_article_bytes, quiet)
    else:
        clf = StanceClassifier.load(model, backend=backend)
        summary = predict_articles(clf, inputs, out=out, fmt=fmt, batch_size=batch_size, min_score=min_score,
                                   quiet=quiet, resume=resume, max_article_bytes=max_article_bytes)
    if not quiet or out:
        typer.echo(summary.format(), err=True)


@app.command()
@_user_errors
def render(
    predictions: Annotated[Path, typer.Argument(help="JSONL rows written by stance predict.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="The HTML file to write.")],
    articles: Annotated[list[str] | None, typer.Option(
        "--articles", help="The input articles again (as for predict), to show them whole around their sentences.")
    ] = None,
    model: Annotated[Path | None, typer.Option(
        "--model", help="The model directory, for its name, labels and threshold in the header.")] = None,
    title: Annotated[str, typer.Option(help="The page title.")] = "stance report",
) -> None:
    """Render prediction rows as one self-contained HTML page (no network needed to view it)."""
    from stance.report import render_file

    n_docs, n_rows = render_file(predictions, out, articles=articles or [], model=model, title=title)
    typer.echo(f"{n_docs} articles, {n_rows} sentences -> {out}", err=True)


@app.command()
@_user_errors
def serve(
    model: Annotated[Path, typer.Argument(help="Trained model directory.")],
    host: Annotated[str, typer.Option(help="Address to listen on; put a reverse proxy in front for others.")]
    = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    workers: Annotated[int, typer.Option(help="Processes, each with its own model and micro-batcher.")] = 1,
    backend: Backend = "auto",
    batch_size: Annotated[int, typer.Option(help="Sentences per forward pass.")] = 64,
    max_body_mb: Annotated[float, typer.Option(help="Largest request body; larger ones get 413.")] = 2.0,
    max_sentences: Annotated[int, typer.Option(help="Most sentences per request; more get 413.")] = 2000,
    timeout: Annotated[float, typer.Option(help="Seconds a request may take before it gets 503.")] = 30.0,
    access_log: Annotated[bool, typer.Option(help="Log one line per request.")] = True,
    root_path: Annotated[str, typer.Option(
        help="The path prefix a reverse proxy serves this under (e.g. /stance), for the links of /docs.")] = "",
) -> None:
    """Serve the model over HTTP: POST /v1/predict, GET /v1/model, GET /healthz, /docs, and a page at /."""
    from stance.serve import serve as run_serve

    run_serve(model, host=host, port=port, workers=workers, access_log=access_log, backend=backend,
              root_path=root_path, batch_size=batch_size, max_body_mb=max_body_mb, max_sentences=max_sentences,
              timeout_s=timeout)


@app.command()
@_user_errors
def export(
    model: Annotated[Path, typer.Argument(help="Trained model directory.")],
    onnx: Annotated[bool, typer.Option("--onnx", help="Write MODEL/onnx/model.onnx.")] = False,
    int8: Annotated[bool, typer.Option("--int8", help="Also write a dynamically quantized int8 ONNX model.")] = False,
    data: Annotated[Path | None, typer.Option(help="Labeled file to measure agreement and speed on "
                                                  "\\[default: the model's test split].")] = None,
    overwrite: Overwrite = False,
) -> None:
    """Export ONNX (and int8) backends and measure their agreement with fp32."""
    from stance.export import export as run_export
    from stance.export import format_report

    report = run_export(model, onnx=onnx, int8=int8, data=data, overwrite=overwrite)
    typer.echo(format_report(report))


@app.command()
@_user_errors
def calibrate(
    model: Annotated[Path, typer.Argument(help="Trained model directory.")],
    data: Annotated[Path | None, typer.Option(help="Labeled dev file \\[default: the model's dev split].")] = None,
) -> None:
    """Fit a softmax temperature on dev data so scores read as probabilities (argmax labels unchanged)."""
    from stance.calibration import calibrate_model_dir

    r = calibrate_model_dir(model, data)
    typer.echo(f"temperature {r['temperature']:.3f} on {r['data']}: dev ECE {r['dev_ece_before']:.3f} -> "
               f"{r['dev_ece_after']:.3f}, log-loss {r['dev_logloss_before']:.3f} -> {r['dev_logloss_after']:.3f}")
    if "min_score" in r:
        typer.echo(f"none threshold chosen again under the new temperature: {r['min_score']:.2f}")


@app.command()
@_user_errors
def network(
    predictions: Annotated[list[Path], typer.Argument(help="`stance predict` JSONL files (a model with spans).")],
    out: Annotated[Path, typer.Option("--out", help="Folder for edges.csv, actors.csv, network.graphml, network.png.")],
    top: Annotated[int, typer.Option(help="Actors drawn in network.png (by sentences on their edges).")] = 30,
    overwrite: Overwrite = False,
) -> None:
    """Who accuses, denies or supports whom across articles: edges, actors, GraphML and a picture."""
    from stance.network import network as run_network
    from stance.network import summary

    net = run_network(predictions, out, top=top, overwrite=overwrite)
    typer.echo(f"{summary(net)}\nwritten to {out}")


def main() -> None:
    app(prog_name="stance")


if __name__ == "__main__":
    sys.exit(main())

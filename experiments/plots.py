"""The learning-curve plot of the report (the confusion matrix is ``stance.metrics.plot_confusion``)."""

from __future__ import annotations

from pathlib import Path

from stance.io import atomic_open


def plot_curve(points: dict[str, dict[float, float]], path: Path) -> None:
    """Test macro-F1 against the share of training rows, one line per model, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for name, pts in points.items():
        xs = sorted(pts)
        ax.plot([x * 100 for x in xs], [pts[x] for x in xs], marker="o", label=name)
        for x in xs:
            ax.annotate(f"{pts[x]:.3f}", (x * 100, pts[x]), textcoords="offset points", xytext=(0, 6),
                        ha="center", fontsize=8)
    ax.set_xscale("log")
    ticks = sorted({x for pts in points.values() for x in pts})
    ax.set_xticks([x * 100 for x in ticks], [f"{x:.0%}" for x in ticks])
    ax.minorticks_off()
    ax.set_xlabel("training rows, as a share of the round-1 train split")
    ax.set_ylabel("test macro-F1")
    ax.set_title("Learning curve")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    with atomic_open(path, "wb", encoding=None) as fh:
        fig.savefig(fh, format="png", dpi=120)
    plt.close(fig)

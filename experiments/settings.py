"""The experiment plan as data: ``settings.yaml`` read into :class:`Setting` objects and checked.

Every problem with the file is one :class:`~stance.errors.StanceError` line naming the
file and the key (``settings[3].seeds``), so a typo in a new experiment fails before
anything trains.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import yaml

from stance.errors import StanceError, short

PLAN_FILE = Path(__file__).with_name("settings.yaml")
CURVE_PREFIX = "train-"  # learning-curve points, kept out of the report's table of recipes


@dataclass(frozen=True)
class Setting:
    """One training recipe: the base config plus ``--set`` overrides."""

    name: str
    what: str
    overrides: tuple[str, ...] = ()
    seeds: tuple[int, ...] = (42, 43, 44)
    # A point of the learning curve, plotted at its share of the round-1 rows (mean over its seeds).
    curve: bool = False


@dataclass(frozen=True)
class CrossvalPlan:
    """Settings to cross-validate on round-1 train (experiments.crossval), where dev cannot decide."""

    heldout: str       # the file whose rows are held out, fold by fold
    documents: str     # glob of the training files whose documents need a story group
    baseline: str      # a setting that reproduces the dev winner's recipe...
    stands_for: str    # ...namely this one (bf16 cross-validates in two thirds of the time)
    others: tuple[str, ...]
    k: int = 3
    seed: int = 42


@dataclass(frozen=True)
class Plan:
    """Everything ``settings.yaml`` declares."""

    settings: tuple[Setting, ...]   # in the file's order, curve points not included
    curve: tuple[Setting, ...]
    curve_fractions: tuple[float, ...]
    curve_train: str                # the rows the curve takes fractions of (TF-IDF's curve too)
    crossval: CrossvalPlan
    time_budget_s: int

    def sweep_settings(self) -> list[Setting]:
        """Every setting in training order: the curve is cheap and the report needs it, so it follows the first."""
        return [*self.settings[:1], *self.curve, *self.settings[1:]]


def is_curve_point(setting: Setting) -> bool:
    return setting.name.startswith(CURVE_PREFIX)


def train_override(files: list[str]) -> str:
    """The ``data.train`` override of a list of files, written as the sweep has always written it."""
    return f"data.train={files[0]}" if len(files) == 1 else f"data.train=[{', '.join(files)}]"


class _Reader:
    """Typed access to one YAML mapping; every error names the file and the dotted key."""

    def __init__(self, file: str, where: str, node: Any, keys: set[str]) -> None:
        self.file, self.where = file, where
        if not isinstance(node, dict):
            self.fail("", f"expected a mapping, got {type(node).__name__}")
        unknown = sorted(set(map(str, node)) - keys)
        if unknown:
            self.fail(unknown[0], f"unknown key (known: {', '.join(sorted(keys))})")
        self.node = node

    def fail(self, key: str, problem: str) -> NoReturn:
        at = ".".join(p for p in (self.where, key) if p)
        raise StanceError(f"{self.file}: {at or 'top level'}: {problem}")

    def get(self, key: str, check: Callable[[Any], bool], want: str, default: Any = ...) -> Any:
        if key not in self.node:
            if default is ...:
                self.fail(key, "missing")
            return default
        value = self.node[key]
        if not check(value):
            self.fail(key, f"expected {want}, got {short(value)}")
        return value

    def text(self, key: str) -> str:
        return self.get(key, lambda v: isinstance(v, str) and v.strip() != "", "a non-empty string")

    def integer(self, key: str, least: int, default: Any = ...) -> int:
        return self.get(key, lambda v: _is_int(v) and v >= least, f"an integer >= {least}", default)

    def texts(self, key: str, default: Any = ...) -> list[str]:
        return self.get(key, lambda v: isinstance(v, list) and all(isinstance(x, str) and x for x in v),
                        "a list of strings", default)

    def seeds(self, key: str, default: Any = ...) -> list[int]:
        return self.get(key, lambda v: isinstance(v, list) and all(_is_int(x) for x in v) and len(set(v)) == len(v),
                        "a list of distinct integers", default)

    def child(self, key: str, keys: set[str], index: int | None = None) -> _Reader:
        node = self.get(key, lambda v: True, "")
        at = ".".join(p for p in (self.where, key) if p) + ("" if index is None else f"[{index}]")
        return _Reader(self.file, at, node if index is None else node[index], keys)


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _overrides(r: _Reader, key: str) -> list[str]:
    items = r.texts(key, [])
    for item in items:
        if "=" not in item:
            r.fail(key, f"{short(item)}: expected key=value, e.g. train.epochs=3")
        if item.split("=", 1)[0].strip() == "data.train":
            r.fail(key, "data.train goes in `train` (a name from train_files)")
    return items


def _train_files(top: _Reader) -> dict[str, list[str]]:
    node = top.get("train_files", lambda v: isinstance(v, dict) and v != {}, "a mapping of names to lists of files")
    r = top.child("train_files", set(map(str, node)))
    files = {}
    for name in node:
        if not isinstance(name, str):
            r.fail(str(name), "names must be strings")
        files[name] = r.texts(name)
        if not files[name]:
            r.fail(name, "expected at least one file")
    return files


def _train(r: _Reader, files: dict[str, list[str]], key: str = "train") -> list[str]:
    name = r.text(key)
    if name not in files:
        r.fail(key, f"{short(name)} is not in train_files (known: {', '.join(files)})")
    return files[name]


def _settings(top: _Reader, files: dict[str, list[str]], seeds: list[int]) -> dict[Setting, list[str]]:
    """Every setting, with the files it trains on."""
    entries = top.get("settings", lambda v: isinstance(v, list) and v != [], "a non-empty list")
    out: dict[Setting, list[str]] = {}
    for i in range(len(entries)):
        r = top.child("settings", {"name", "what", "train", "overrides", "seeds", "curve"}, index=i)
        name = r.text("name")
        if name in {s.name for s in out}:
            r.fail("name", f"{short(name)} is already the name of another setting")
        if name.startswith(CURVE_PREFIX):
            r.fail("name", f"{short(name)}: names starting with {CURVE_PREFIX!r} are the learning curve's")
        train = _train(r, files)
        overrides = (train_override(train), *_overrides(r, "overrides"))
        out[Setting(name, r.text("what"), overrides, tuple(r.seeds("seeds", seeds)),
                    r.get("curve", lambda v: isinstance(v, bool), "true or false", False))] = train
    return out


def _curve(top: _Reader, files: dict[str, list[str]]) -> tuple[list[Setting], list[float], str]:
    r = top.child("curve", {"what", "train", "overrides", "fractions", "seed"})
    what, train, seed = r.text("what"), _train(r, files), r.integer("seed", 0)
    fractions = r.get("fractions", lambda v: isinstance(v, list) and all(
        isinstance(f, (int, float)) and not isinstance(f, bool) and 0 < f < 1 for f in v),
        "a list of fractions between 0 and 1")
    if len(train) != 1:
        r.fail("train", "the curve takes fractions of one file")
    try:
        whats = [what.format(fraction=f) for f in fractions]
    except (KeyError, IndexError, ValueError) as e:
        r.fail("what", f"not a template of {{fraction}}: {short(e, quote=False)}")
    points = [Setting(f"{CURVE_PREFIX}{round(f * 100)}pct", w,
                      (train_override(train), *_overrides(r, "overrides"), f"train.train_fraction={f}"),
                      seeds=(seed,), curve=True) for f, w in zip(fractions, whats)]
    return points, [float(f) for f in fractions], train[0]


def _crossval(top: _Reader, files: dict[str, list[str]], settings: dict[Setting, list[str]]) -> CrossvalPlan:
    r = top.child("crossval", {"heldout", "documents", "baseline", "stands_for", "others", "k", "seed"})
    heldout = _train(r, files, "heldout")
    if len(heldout) != 1:
        r.fail("heldout", "the held-out rows must be one file")
    known = {s.name: train for s, train in settings.items()}
    for key in ("baseline", "stands_for"):
        if r.text(key) not in known:
            r.fail(key, f"{short(r.node[key])} is not a setting")
    others = r.texts("others")
    for name in [r.node["baseline"], *others]:
        if name not in known:
            r.fail("others", f"{short(name)} is not a setting")
        if heldout[0] not in known[name]:
            r.fail("others" if name in others else "baseline", f"{name} does not train on {heldout[0]}")
    return CrossvalPlan(heldout[0], r.text("documents"), r.node["baseline"], r.node["stands_for"], tuple(others),
                        r.integer("k", 2, 3), r.integer("seed", 0, 42))


def load_plan(path: str | Path = PLAN_FILE) -> Plan:
    """Read and check the experiment plan (default: ``experiments/settings.yaml``)."""
    file = str(path)
    try:
        raw = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except OSError as e:
        raise StanceError(f"{file}: cannot read the experiment plan: {e.strerror or e}") from None
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        raise StanceError(f"{file}: not valid YAML: {short(e, quote=False)}") from None
    top = _Reader(file, "", raw, {"time_budget_minutes", "seeds", "train_files", "settings", "curve", "crossval"})
    files = _train_files(top)
    settings = _settings(top, files, top.seeds("seeds"))
    curve, fractions, curve_train = _curve(top, files)
    return Plan(tuple(settings), tuple(curve), tuple(fractions), curve_train, _crossval(top, files, settings),
                60 * top.integer("time_budget_minutes", 1))

"""The fast linear text classifier: hashed word uni- and bigrams + logistic regression (scikit-learn).

This is the model class behind the fastText quality and toxicity filters of DCLM and Dolma: a bag of
word n-grams and one linear layer. We use scikit-learn's ``HashingVectorizer`` (no vocabulary to
store, so the model is fixed-size and any text can be scored) and ``LogisticRegression`` rather than
fastText because scikit-learn is already a core dependency, has wheels for every platform we support,
and its trainer is deterministic; fastText's Python package is unmaintained and builds from source.

A model folder holds ``config.json`` (``kind: gristmill-linear``, labels, the vectoriser's
parameters) and ``weights.safetensors`` (``coef``: labels x features, or 1 x features for two labels;
``intercept``). Nothing is pickled: loading rebuilds the vectoriser from its parameters and reads the
arrays with safetensors, so a model folder from anywhere is safe to open.

This module trains, saves, loads and scores; it knows nothing about corpora or steps.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from gristmill.errors import GristmillError
from gristmill.folders import write_record

if TYPE_CHECKING:
    from sklearn.feature_extraction.text import HashingVectorizer

KIND = "gristmill-linear"
CONFIG = "config.json"
WEIGHTS = "weights.safetensors"


class ModelFolderError(GristmillError, ValueError):
    """A model folder that is missing, unreadable or of the wrong kind (a user error)."""


@dataclass
class VectorizerConfig:
    """Parameters of scikit-learn's ``HashingVectorizer``; stored so scoring hashes exactly like training."""

    n_features: int = 1 << 20
    ngram_range: tuple[int, int] = (1, 2)
    lowercase: bool = True
    token_pattern: str = r"(?u)\b\w+\b"
    norm: str = "l2"
    alternate_sign: bool = False

    def build(self) -> HashingVectorizer:
        from sklearn.feature_extraction.text import HashingVectorizer

        return HashingVectorizer(n_features=self.n_features, ngram_range=tuple(self.ngram_range),
                                 lowercase=self.lowercase, token_pattern=self.token_pattern, norm=self.norm,
                                 alternate_sign=self.alternate_sign, dtype=np.float32)


@dataclass
class LinearClassifier:
    """Labels, vectoriser and weights; ``predict_proba`` gives one probability per label."""

    labels: list[str]
    coef: np.ndarray
    intercept: np.ndarray
    vectorizer: VectorizerConfig = field(default_factory=VectorizerConfig)
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._vec = self.vectorizer.build()
        # Sparse rows @ dense (features x k): k is 1 for two labels.
        self._w = np.ascontiguousarray(self.coef.T, dtype=np.float32)

    def decision(self, texts: Sequence[str]) -> np.ndarray:
        x = self._vec.transform(texts)
        return np.asarray(x @ self._w) + self.intercept.astype(np.float32)

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        """``[len(texts), len(labels)]`` probabilities (logistic for two labels, softmax otherwise)."""
        z = self.decision(texts).astype(np.float64)
        if len(self.labels) == 2:
            p = 1.0 / (1.0 + np.exp(-z[:, 0]))
            return np.stack([1.0 - p, p], axis=1)
        z -= z.max(axis=1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(axis=1, keepdims=True)

    def save(self, folder: str | Path) -> Path:
        from safetensors.numpy import save_file

        out = Path(folder)
        out.mkdir(parents=True, exist_ok=True)
        save_file({"coef": np.ascontiguousarray(self.coef, np.float32),
                   "intercept": np.ascontiguousarray(self.intercept, np.float32)}, str(out / WEIGHTS))
        config = {"kind": KIND, "format_version": 1, "labels": self.labels, "vectorizer": asdict(self.vectorizer),
                  **self.meta}
        write_record(out / CONFIG, config)
        return out


def read_config(folder: Path) -> dict[str, Any]:
    """``config.json`` of a model folder, or a one-line error naming the folder."""
    path = folder / CONFIG
    if not folder.is_dir():
        raise ModelFolderError(f"model folder {folder} does not exist")
    if not path.is_file():
        raise ModelFolderError(f"{folder} has no {CONFIG}")
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelFolderError(f"{path} is not readable JSON: {exc}") from None
    if not isinstance(config, dict):
        raise ModelFolderError(f"{path} is not a JSON object")
    return config


def load_linear(folder: str | Path) -> LinearClassifier:
    from safetensors import SafetensorError
    from safetensors.numpy import load_file

    folder = Path(folder)
    config = read_config(folder)
    if config.get("kind") != KIND:
        raise ModelFolderError(f"{folder} is not a linear classifier folder (config.json kind is "
                               f"{config.get('kind')!r}, expected {KIND!r}; train one with `gristmill classify train`)")
    try:
        arrays = load_file(str(folder / WEIGHTS))
        vec = VectorizerConfig(**{**config["vectorizer"], "ngram_range": tuple(config["vectorizer"]["ngram_range"])})
        labels = [str(label) for label in config["labels"]]
    except (OSError, SafetensorError, KeyError, TypeError) as exc:
        raise ModelFolderError(f"{folder}: cannot read the linear model ({exc})") from None
    coef, intercept = arrays["coef"], arrays["intercept"]
    rows = 1 if len(labels) == 2 else len(labels)
    if coef.shape != (rows, vec.n_features) or intercept.shape != (rows,):
        raise ModelFolderError(f"{folder}: weights of shape {coef.shape} do not match {len(labels)} labels and "
                               f"{vec.n_features} features")
    meta = {k: v for k, v in config.items() if k not in ("kind", "format_version", "labels", "vectorizer")}
    return LinearClassifier(labels, coef, intercept, vec, meta)


def train_linear(texts: Sequence[str], labels: Sequence[str], *, c: float = 4.0, balanced: bool = True,
                 vectorizer: VectorizerConfig | None = None, seed: int = 0) -> LinearClassifier:
    """Fit logistic regression on hashed n-grams; ``labels`` are strings (two or more distinct values)."""
    from sklearn.linear_model import LogisticRegression

    names = sorted(set(labels))
    if len(names) < 2:
        raise ValueError(f"training needs at least two labels, found {names}")
    vec = vectorizer or VectorizerConfig()
    t0 = time.perf_counter()
    x = vec.build().transform(texts)
    y = np.array([names.index(label) for label in labels])
    model = LogisticRegression(C=c, class_weight="balanced" if balanced else None, max_iter=2000,
                               solver="liblinear" if len(names) == 2 else "lbfgs", random_state=seed)
    model.fit(x, y)
    counts = {name: int((y == i).sum()) for i, name in enumerate(names)}
    meta = {"trained_on": counts, "c": c, "balanced": balanced, "seconds": round(time.perf_counter() - t0, 2)}
    return LinearClassifier(names, model.coef_.astype(np.float32), model.intercept_.astype(np.float32), vec, meta)

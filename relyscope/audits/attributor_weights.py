"""The learned attributor's weights file: one weight per (layer, head), with its provenance.

A JSON file `attributor-<model id>.json` (packaged ones under relyscope/data/): the model it
was trained for, the weights (layer-major: layer 0's heads first), a hash of them, and how
they were trained (cases, masks, validation LDS, date, the command).
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, Field

from relyscope.errors import CaseError

DATA_DIR = Path(__file__).resolve().parent.parent / "data"
TRAIN_COMMAND = "relyscope train-attributor"


class AttributorWeights(BaseModel):
    model_id: str
    layers: int
    heads: int
    weights: list[float]  # layers * heads, layer-major
    weights_sha256: str = ""
    provenance: dict[str, Any] = Field(default_factory=dict)

    def vector(self) -> np.ndarray:
        return np.asarray(self.weights, dtype=np.float64)

    def head_map(self) -> list[list[float]]:
        return self.vector().reshape(self.layers, self.heads).round(6).tolist()


def weights_hash(weights: list[float]) -> str:
    text = json.dumps([round(float(w), 9) for w in weights])
    return hashlib.sha256(text.encode()).hexdigest()


def build(model_id: str, layers: int, heads: int, weights: np.ndarray,
          provenance: dict[str, Any]) -> AttributorWeights:
    values = [round(float(w), 9) for w in weights]
    stamped = {**provenance, "date": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")}
    return AttributorWeights(model_id=model_id, layers=layers, heads=heads, weights=values,
                             weights_sha256=weights_hash(values), provenance=stamped)


def packaged_path(model_id: str) -> Path:
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in model_id)
    return DATA_DIR / f"attributor-{safe}.json"


def save(weights: AttributorWeights, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(weights.model_dump(mode="json"), indent=1) + "\n")


def load(path: Path) -> AttributorWeights:
    return AttributorWeights.model_validate_json(path.read_text())


def weights_for(model_id: str, layers: int, heads: int, path: str | None,
                field: str = "method_settings.learned.weights") -> AttributorWeights:
    """The weights for this model: `path` when given, else the packaged file; a CaseError
    naming the training command when there are none or they are for another model shape."""
    file = Path(path).expanduser() if path else packaged_path(model_id)
    if not file.is_file():
        raise CaseError(field, f"no trained attributor weights for model {model_id!r} "
                               f"({file} does not exist); train them with "
                               f"`{TRAIN_COMMAND} --model {model_id}`")
    try:
        weights = load(file)
    except ValueError as err:
        raise CaseError(field, f"{file} is not an attributor weights file: {err}") from None
    if (weights.layers, weights.heads) != (layers, heads) or len(weights.weights) != layers * heads:
        raise CaseError(field, f"{file} was trained for {weights.model_id!r} with "
                               f"{weights.layers}x{weights.heads} heads, not {model_id!r} with "
                               f"{layers}x{heads}; train them with "
                               f"`{TRAIN_COMMAND} --model {model_id}`")
    return weights

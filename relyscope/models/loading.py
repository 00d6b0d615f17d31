"""`ModelOptions`: which model to load, on which device, in which dtype; and the one `load`.

Every command, worker and service that needs a model takes a `ModelOptions` (or a loaded
`CausalLM`), so `--model/--device/--dtype` mean the same everywhere. The options are a frozen
dataclass of strings: hashable, and picklable for spawned worker processes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from relyscope.errors import CaseError
from relyscope.models.packaged import DEFAULT_MODEL

if TYPE_CHECKING:  # torch and the backend load in `load` and the device check: the CLI's
    # flags (DTYPES, the defaults) are read without them
    from relyscope.models.backend import CausalLM
    from relyscope.models.scoring import ScoreCache, ScoringOptions

#: The dtypes a model can run in (names as in torch).
DTYPES = ("float32", "bfloat16", "float16")


@dataclass(frozen=True)
class ModelOptions:
    """`model`: a local Hugging Face causal LM folder (None: the packaged SmolLM2-135M).

    `device`: a torch device (cpu, cuda, cuda:1, ...); `dtype`: one of `DTYPES`.
    """

    model: str | None = None
    device: str = "cpu"
    dtype: str = "float32"

    def __post_init__(self) -> None:
        if self.dtype not in DTYPES:
            raise CaseError("dtype", f"{self.dtype!r} is not one of {', '.join(DTYPES)}")
        if not isinstance(self.device, str) or not self.device.strip():
            raise CaseError("device", "give a torch device such as cpu or cuda")
        # the default needs no check, and so no torch import (the CLI's flags read
        # `ModelOptions()`'s defaults)
        if self.device != "cpu":
            import torch

            try:
                torch.device(self.device)
            except (RuntimeError, ValueError) as err:
                raise CaseError("device",
                                f"{self.device!r} is not a torch device ({err})") from None
        if self.model == "":
            object.__setattr__(self, "model", None)

    @classmethod
    def of(cls, value: ModelOptions | str | None) -> ModelOptions:
        """Options from what older call sites pass: a model folder name, None, or options."""
        return value if isinstance(value, ModelOptions) else cls(model=value)

    @property
    def model_id(self) -> str:
        """The id the loaded model will report (`CausalLM.info.id`), without loading it."""
        return DEFAULT_MODEL if self.model in (None, DEFAULT_MODEL) else str(self.model)

    def describe(self) -> str:
        name = self.model or f"{DEFAULT_MODEL} (packaged)"
        return f"{name} on {self.device} in {self.dtype}"

    def load(self, *, cache: ScoreCache | None = None,
             options: ScoringOptions | None = None) -> CausalLM:
        """Load the model; `cache` keeps its scores (default: in memory)."""
        import torch

        from relyscope.models.backend import CausalLM

        if torch.device(self.device).type == "cuda" and not torch.cuda.is_available():
            raise CaseError("device", f"{self.device!r}: CUDA is not available on this machine")
        return CausalLM.load(self.model, device=self.device, dtype=self.dtype, cache=cache,
                             options=options)

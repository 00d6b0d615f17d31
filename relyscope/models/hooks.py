"""Plain PyTorch forward hooks on decoder layers and the token embedding.

A small resolver finds the decoder layer list in the common layouts (``model.layers``,
``transformer.h``, ``gpt_neox.layers``, ``model.decoder.layers``); nothing here is specific to
one architecture.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from torch import nn

_LAYER_PATHS = ("model.layers", "transformer.h", "gpt_neox.layers", "model.decoder.layers",
                "decoder.layers", "layers")

Hook = Callable[[nn.Module, Any, Any], Any]


def _resolve(root: nn.Module, dotted: str) -> Any:
    obj: Any = root
    for name in dotted.split("."):
        obj = getattr(obj, name, None)
        if obj is None:
            return None
    return obj


def decoder_layers(model: nn.Module) -> nn.ModuleList:
    for path in _LAYER_PATHS:
        found = _resolve(model, path)
        if isinstance(found, nn.ModuleList) and len(found) > 0:
            return found
    raise TypeError(f"cannot find the decoder layers of {type(model).__name__}; "
                    f"looked for {', '.join(_LAYER_PATHS)}")


def token_embedding(model: nn.Module) -> nn.Module:
    embedding = model.get_input_embeddings()  # type: ignore[operator]
    if embedding is None:
        raise TypeError(f"{type(model).__name__} has no input embedding")
    return embedding


@contextmanager
def forward_hooks(hooks: Sequence[tuple[nn.Module, Hook]]) -> Iterator[None]:
    """Register forward hooks for the duration of the block; always removed afterwards."""
    handles = [module.register_forward_hook(hook) for module, hook in hooks]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


def layer_output_tensor(output: Any) -> Any:
    """The hidden-state tensor of a decoder layer's output (a tensor or a tuple)."""
    return output[0] if isinstance(output, tuple) else output

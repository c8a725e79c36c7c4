"""Pretraining checkpoints as safetensors: tensors in the file, everything else as JSON in its
header. Loading never unpickles (``torch.load`` did, and some torch versions let a crafted file
bypass ``weights_only``: CVE-2025-32434)."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from ..atomic import atomic_write

CHECKPOINT_FORMAT = "napari-matseg-pretrain-checkpoint"


def flatten_optimizer(state: dict) -> tuple[dict[str, torch.Tensor], dict]:
    """Return an optimiser ``state_dict`` as (named tensors, JSON-able rest)."""
    tensors, scalars = {}, {}
    for index, slots in state["state"].items():
        for key, value in slots.items():
            if torch.is_tensor(value):
                tensors[f"optimizer.{index}.{key}"] = value
            else:
                scalars[f"{index}.{key}"] = value
    return tensors, {"param_groups": state["param_groups"], "scalars": scalars}


def unflatten_optimizer(tensors: dict[str, torch.Tensor], meta: dict, device) -> dict:
    """Return the optimiser ``state_dict`` that :func:`flatten_optimizer` took apart."""
    state: dict[int, dict] = {}
    for name, value in tensors.items():
        if name.startswith("optimizer."):
            _, index, key = name.split(".", 2)
            state.setdefault(int(index), {})[key] = value.to(device)
    for name, value in meta["scalars"].items():
        index, key = name.split(".", 1)
        state.setdefault(int(index), {})[key] = value
    return {"state": state, "param_groups": meta["param_groups"]}


def write_checkpoint(path: str | Path, tensors: dict[str, torch.Tensor], meta: dict) -> Path:
    """Write ``tensors`` and ``meta`` atomically to ``path``."""
    from safetensors.torch import save_file

    tensors = {k: v.detach().cpu().contiguous().clone() for k, v in tensors.items()}
    header = {"format": CHECKPOINT_FORMAT, "meta": json.dumps(meta)}
    return atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata=header))


def read_checkpoint(path: str | Path) -> tuple[dict[str, torch.Tensor], dict]:
    """Return (tensors, meta) from a checkpoint; raise ``ValueError`` for other files."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    path = Path(path)
    if path.stat().st_size == 0:
        raise ValueError("the file is empty")
    with safe_open(str(path), framework="pt") as f:
        header = f.metadata() or {}
    if header.get("format") != CHECKPOINT_FORMAT:
        raise ValueError("not a napari-matseg pretraining checkpoint")
    meta = json.loads(header["meta"])
    if not isinstance(meta, dict):
        raise ValueError("its header is not a mapping")
    return load_file(str(path)), meta

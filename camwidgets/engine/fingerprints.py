"""Content keys of model-ready batches: equal values (and shape, dtype) give equal keys."""

from __future__ import annotations

import hashlib

import torch

# Odd 63-bit multipliers (from splitmix64) for the on-device hash; products wrap mod 2**64.
_MIX = (0x1E3779B97F4A7C15, 0x3F58476D1CE4E5B9, 0x14D049BB133111EB, 0x2545F4914F6CDD1D)


def fingerprint(tensor: torch.Tensor) -> str:
    """Content key of a batch: equal values (and shape, dtype) give equal keys.

    On the CPU, SHA-256 of the raw bytes (no copy when contiguous; with the SHA instructions of
    current CPUs it hashes 3-4x faster than blake2b here). Elsewhere (CUDA, MPS), two
    position-dependent 64-bit mixing sums computed on the device itself, so only 16 bytes
    cross to the host instead of the whole batch.
    """
    data = tensor.detach()
    head = f"{tuple(data.shape)}|{str(data.dtype).replace('torch.', '')}"
    if data.device.type == "cpu":
        return f"{head}|{_sha256(data)}"
    return f"{head}|{_device_hash(data)}"


def _sha256(data: torch.Tensor) -> str:
    """SHA-256 of a CPU tensor's bytes."""
    digest = hashlib.sha256()
    if data.numel():
        raw = data.contiguous().reshape(-1).view(torch.uint8).numpy()
        digest.update(raw.data)
    return digest.hexdigest()


def _device_hash(data: torch.Tensor) -> str:
    """Two position-dependent mixing sums over the tensor's words, computed where it lives."""
    flat = data.contiguous().reshape(-1)
    nbytes = flat.numel() * flat.element_size()
    if nbytes == 0:
        return "empty"
    width, word = next(
        (w, d)
        for w, d in ((8, torch.int64), (4, torch.int32), (2, torch.int16), (1, torch.uint8))
        if nbytes % w == 0
    )
    words = flat.view(torch.uint8).view(word).to(torch.int64)
    index = torch.arange(words.numel(), device=words.device, dtype=torch.int64)
    sums = []
    for a, b in ((_MIX[0], _MIX[1]), (_MIX[2], _MIX[3])):
        mixed = words * a + index * b
        mixed = mixed ^ (mixed >> 29)
        mixed = mixed * b
        mixed = mixed ^ (mixed >> 32)
        sums.append(mixed.sum())
    first, second = torch.stack(sums).tolist()
    return f"{width}:{first & (2**64 - 1):016x}{second & (2**64 - 1):016x}"

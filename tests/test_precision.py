"""``training.precision: auto``: bf16 only where the hardware computes it natively."""

from __future__ import annotations

from pathlib import Path

import torch

from retrieval_kd.training import precision
from retrieval_kd.training.precision import cpu_has_native_bf16, resolve_precision


def test_cpu_bf16_flags_are_read_from_cpuinfo(tmp_path: Path) -> None:
    native = tmp_path / "native"
    native.write_text("processor\t: 0\nflags\t\t: fpu avx2 avx512f avx512_bf16\n")
    emulated = tmp_path / "emulated"
    emulated.write_text("processor\t: 0\nflags\t\t: fpu avx2 avx512f\n")
    assert cpu_has_native_bf16(native)
    assert not cpu_has_native_bf16(emulated)
    assert not cpu_has_native_bf16(tmp_path / "no-such-file")


def test_auto_picks_bf16_only_on_bf16_hardware(monkeypatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: True)
    assert resolve_precision("auto") == "bf16"
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: False)
    assert resolve_precision("auto") == "fp32"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: False)
    assert resolve_precision("auto") == "fp32"
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: True)
    assert resolve_precision("auto") == "bf16"
    for explicit in ("fp32", "bf16", "fp16"):
        assert resolve_precision(explicit) == explicit

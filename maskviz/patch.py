"""Kept for compatibility: `maskviz.patch` is now `maskviz.fixes`."""

from __future__ import annotations

from .fixes import FIXED, LEFT, NEW, Check, FixResult, PatchResult, Row, fix_model_file, patch_model

__all__ = [
    "FIXED",
    "LEFT",
    "NEW",
    "Check",
    "FixResult",
    "PatchResult",
    "Row",
    "fix_model_file",
    "patch_model",
]

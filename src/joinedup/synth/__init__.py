"""Synthetic landing data with a known linkage truth (see generate.py)."""

from joinedup.synth.generate import SynthError, generate

__all__ = ["SynthError", "generate"]

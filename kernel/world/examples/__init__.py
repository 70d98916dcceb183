"""Trusted Python workflows that ship with the kernel (examples and tests)."""

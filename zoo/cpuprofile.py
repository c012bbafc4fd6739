"""Which CPU genzoo should believe it runs on: the ``ZOO_CPU_PROFILE`` override, read without torch.

``auto`` (the default) reads the real CPU (`zoo.device.capabilities`); ``native-bf16`` acts as
if it had avx512_bf16/AMX, ``no-bf16`` as if it had neither, so tests and CI exercise each machine
class on any machine. Every command checks the value at start (`zoo.cli.app`), so a wrong one
is one line whatever the command, not only where a precision is chosen.
"""

from __future__ import annotations

import os

from zoo.errors import UsageError

#: The environment variable, and the profiles it may name.
CPU_PROFILE_ENV = "ZOO_CPU_PROFILE"
CPU_PROFILES = ("auto", "native-bf16", "no-bf16")


def cpu_profile() -> str:
    """The CPU profile ``ZOO_CPU_PROFILE`` asks for (``auto`` when unset or empty).

    Raises:
        UsageError: an unknown profile name (exit code 2).
    """
    name = os.environ.get(CPU_PROFILE_ENV, "").strip().lower() or "auto"
    if name not in CPU_PROFILES:
        known = ", ".join(CPU_PROFILES)
        raise UsageError(f"{CPU_PROFILE_ENV}={name!r} is not a CPU profile (use {known})")
    return name

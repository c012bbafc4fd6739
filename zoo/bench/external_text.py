"""How an external row's provenance reads (torch-free, for the leaderboard's renderers)."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def external_text(external: Mapping[str, Any]) -> str:
    """``folder samples/ (1,000 of 1,200 images)``: where an external row's samples came from;
    ``""`` for a row genzoo trained (``external == {}``)."""
    if not external:
        return ""
    scored, total = external.get("scored"), external.get("images")
    if isinstance(scored, int) and isinstance(total, int) and total != scored:
        count = f" ({scored:,} of {total:,} images)"
    else:
        count = f" ({total:,} images)" if isinstance(total, int) else ""
    return f"{external.get('kind', 'samples')} {external.get('source', '?')}{count}"

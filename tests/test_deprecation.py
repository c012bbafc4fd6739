"""Moved public names keep working from their old import path, with a DeprecationWarning
(zoo.deprecation; the policy is in docs/plugins.md, "Versioning")."""

from __future__ import annotations

import ast
import re
import warnings

import pytest

from tests.helpers import ROOT


def test_zoo_data_load_dataset_still_works_and_warns():
    import zoo.data
    from zoo.factory import load_dataset

    with pytest.warns(DeprecationWarning, match=r"zoo\.data\.load_dataset moved to zoo\.factory\.load_dataset"):
        from zoo.data import load_dataset as old
    assert old is load_dataset
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        zoo.data.nope  # noqa: B018 - the attribute access is the test


def test_the_docs_import_no_deprecated_name():
    """Every ``from zoo... import`` in a python block of the docs imports without a warning."""
    blocks = [b for p in [ROOT / "README.md", *(ROOT / "docs").glob("*.md")]
              for b in re.findall(r"```python\n(.*?)```", p.read_text(), flags=re.S)]
    lines = [line for b in blocks for line in b.splitlines() if line.startswith("from zoo")]
    imports = [node for line in lines for node in ast.walk(ast.parse(line))
               if isinstance(node, ast.ImportFrom)]  # signatures in the blocks are not Python
    assert imports
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        for node in imports:
            module = __import__(node.module, fromlist=["_"])
            for alias in node.names:
                getattr(module, alias.name)


def test_zoo_ddpm_unet_still_works_and_warns():
    """The diffusion U-Net moved to zoo.nets.unet; zoo_ddpm.unet's names still work, with a warning."""
    import zoo_ddpm.unet

    from zoo.nets import unet

    for name in ("UNet", "ResBlock", "Attention", "timestep_embedding"):
        with pytest.warns(DeprecationWarning, match=rf"zoo_ddpm\.unet\.{name} moved to zoo\.nets\.unet\.{name}"):
            old = getattr(zoo_ddpm.unet, name)
        assert old is getattr(unet, name)
    with pytest.warns(DeprecationWarning):
        from zoo_ddpm.unet import UNet  # noqa: F401 - the import path itself is what is tested
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        zoo_ddpm.unet.nope  # noqa: B018 - the attribute access is the test

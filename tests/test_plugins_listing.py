"""``zoo plugins`` at 80 columns: every line fits, and no hook name is broken mid-word."""

from __future__ import annotations

import json

from tests.helpers import make_distribution, run_zoo

SEVERAL_HOOKS = """
    from zoo import hookimpl

    @hookimpl
    def zoo_register_datasets(register):
        pass

    @hookimpl
    def zoo_register_formats(register):
        pass

    @hookimpl
    def zoo_register_loggers(register):
        pass
"""


def test_plugins_all_fits_80_columns_with_every_hook_name_whole(tmp_path):
    # A third-party plugin with several hooks and a long name, beside the built-ins.
    make_distribution(tmp_path, "zoo-a-plugin-with-a-rather-long-name", {"several-hooks": "zoo_several"},
                      {"zoo_several": SEVERAL_HOOKS})
    env = {"PYTHONPATH": str(tmp_path), "COLUMNS": "80"}
    listed = run_zoo("plugins", "--all", env=env)
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert lines and max(len(line) for line in lines) <= 80, "\n".join(lines)
    hooks = {h for record in json.loads(run_zoo("plugins", "--all", "--json", env=env).stdout)
             for h in record["hooks"]}
    assert {"zoo_register_datasets", "zoo_register_formats", "zoo_register_loggers", "zoo_register_models"} <= hooks
    cells = {cell.strip() for line in lines for cell in line.split("│")}
    assert hooks <= cells, f"hook names broken across lines: {sorted(hooks - cells)}\n{listed.stdout}"
    assert "1.0" in listed.stdout  # the third-party row (its version), beside genzoo 0.2.x

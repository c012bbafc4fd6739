"""The zoo-ppca plugin: registers the ``ppca`` model with genzoo.

The model module (and torch) is imported inside the hook, so loading this plugin, which
``zoo --help`` does, stays cheap.
"""

from zoo import hookimpl


@hookimpl
def zoo_register_models(register):
    from zoo_ppca.model import PPCA

    register(PPCA)

"""Anti-forgetting methods, one registry, each declaring its phase (data, loss, posterior).

Names are resolved lazily (PEP 562) so ``mmtune methods`` does not import torch.
"""
from mmtune.lazy import lazy_exports

_EXPORTS = {
    "METHODS": "mmtune.methods.base",
    "PHASES": "mmtune.methods.base",
    "LossContext": "mmtune.methods.base",
    "Method": "mmtune.methods.base",
    "list_methods": "mmtune.methods.base",
    "register_method": "mmtune.methods.base",
    "resolve_methods": "mmtune.methods.base",
    "with_replay": "mmtune.methods.replay",
}

__all__ = sorted(_EXPORTS)  # noqa: PLE0605

__getattr__ = lazy_exports(__name__, _EXPORTS)

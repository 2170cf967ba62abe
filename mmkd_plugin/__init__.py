# Copyright (c) mmkd_plugin contributors.
"""mmkd_plugin: knowledge distillation for MMDetection 3.x detectors and
mmpretrain classifiers.

Importing the package registers its components (use
``custom_imports=dict(imports=['mmkd_plugin'])``): the detector wrapper,
heads and detection hooks in mmdet's registries, the classifier wrapper
and FKD's transforms in mmpretrain's, the losses both tasks share in
mmengine's root registry. It also lets
``torch.load(weights_only=True)`` read mmengine checkpoints, and teaches
mmengine's config loader the ``mmkd_plugin::`` prefix.
"""
import _mmkd_plugin_scope  # noqa: F401  (patches mmengine's Config)

from .utils import allow_checkpoint_globals
from .version import __version__

allow_checkpoint_globals()

from . import models  # noqa: E402,F401
from . import engine  # noqa: E402,F401
from . import fkd  # noqa: E402,F401

__all__ = ['__version__']

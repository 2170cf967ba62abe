# Copyright (c) mmkd_plugin contributors.
"""Training-loop hooks, registered in mmdet's ``HOOKS``."""
from .hooks import *  # noqa: F401,F403

# Copyright (c) mmkd_plugin contributors.
from .detectors import *  # noqa: F401,F403
from .losses import *  # noqa: F401,F403

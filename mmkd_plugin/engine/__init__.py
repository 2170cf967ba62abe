# Copyright (c) mmkd_plugin contributors.
from .hooks import *  # noqa: F401,F403

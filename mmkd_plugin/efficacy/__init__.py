# Copyright (c) mmkd_plugin contributors.
"""The efficacy benchmark behind tools/demo.py: proxy, runs, reports."""

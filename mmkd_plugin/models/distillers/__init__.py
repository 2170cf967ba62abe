# Copyright (c) mmkd_plugin contributors.
from .base_distiller import BaseDistiller
from .distill_term import DistillTerm, parse_distill_terms

__all__ = ['BaseDistiller', 'DistillTerm', 'parse_distill_terms']

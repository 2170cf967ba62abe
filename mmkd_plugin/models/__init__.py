# Copyright (c) mmkd_plugin contributors.
from .dense_heads import *  # noqa: F401,F403
from .detectors import *  # noqa: F401,F403
from .losses import *  # noqa: F401,F403
from .roi_heads import *  # noqa: F401,F403

try:  # mmpretrain (and torchvision) are needed for classification only.
    import mmpretrain.models  # noqa: F401
except ImportError:
    pass
else:
    from .classifiers import *  # noqa: F401,F403
    from .cls_heads import *  # noqa: F401,F403

# Copyright (c) mmkd_plugin contributors.
"""Resolve a model given as a dict or as a reference to a config file."""
import copy
from typing import Union

from mmengine.config import Config, ConfigDict


def resolve_model_config(model: Union[str, dict], owner: str) -> ConfigDict:
    """Turn a model spec into a model config dict.

    Args:
        model (str | dict): One of

            - a model dict with a ``type`` (used as is);
            - a config reference such as
              ``'mmdet::retinanet/retinanet_r101_fpn_1x_coco.py'`` or a file
              path: that config's ``model`` is used;
            - ``dict(cfg_path=<reference>, **overrides)``: that config's
              ``model`` merged with the overrides (``_delete_`` works as in
              config inheritance).
        owner (str): ``'student'`` or ``'teacher'``, used in error messages.

    Returns:
        ConfigDict: The model config.
    """
    if isinstance(model, str):
        model = dict(cfg_path=model)
    if not isinstance(model, dict):
        raise TypeError(f'distillation: the {owner} must be a model dict '
                        f'or a config reference, got {type(model).__name__}.')
    model = copy.deepcopy(dict(model))
    cfg_path = model.pop('cfg_path', None)
    if cfg_path is None:
        if 'type' not in model:
            raise ValueError(f'distillation: the {owner} dict needs a '
                             '"type" or a "cfg_path".')
        return ConfigDict(model)
    try:
        # Resolves `pkg::path` exactly as `_base_` inheritance does.
        path, _ = Config._get_cfg_path(cfg_path, '')
        base = Config.fromfile(path)
    except (FileNotFoundError, ModuleNotFoundError, ValueError,
            AssertionError) as err:
        raise ValueError(f'distillation: cannot load the {owner} '
                         f'config "{cfg_path}": {err}') from err
    if 'model' not in base:
        raise ValueError(f'distillation: the {owner} config '
                         f'"{cfg_path}" defines no "model".')
    merged = Config(dict(model=base.model))
    merged.merge_from_dict(dict(model=model), allow_list_keys=True)
    return merged.model

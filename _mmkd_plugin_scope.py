# Copyright (c) mmkd_plugin contributors.
"""Teach mmengine's config loader the ``mmkd_plugin::`` prefix.

mmengine 0.10 resolves ``_base_ = 'pkg::path'`` only for a fixed list of
OpenMMLab packages, and only for paths with a folder. This module adds
``mmkd_plugin::<config>.py``, resolved to the configs shipped with the
package, with the scope ``mmdet`` (all our components live in mmdet's
registries). The ``mmkd_plugin_scope.pth`` file in site-packages imports
this module at interpreter start, so any OpenMMLab project's config can
inherit ours. It is cheap: mmengine is patched only when (and if)
``mmengine.config.config`` is imported.

``pip install .`` installs the .pth file; editable installs
(``pip install -e .``) skip data files, so run ``python -m
_mmkd_plugin_scope`` once after them (``make`` does).
"""
import importlib.util
import os.path as osp
import sys

PREFIX = 'mmkd_plugin::'
TARGET_MODULE = 'mmengine.config.config'


def configs_dir() -> str:
    """Return the folder of mmkd_plugin's configs, without importing it."""
    spec = importlib.util.find_spec('mmkd_plugin')
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError('mmkd_plugin is not installed.')
    package_dir = list(spec.submodule_search_locations)[0]
    for candidate in (osp.join(package_dir, '.mim', 'configs'),
                      osp.join(osp.dirname(package_dir), 'configs')):
        if osp.isdir(candidate):
            return candidate
    raise FileNotFoundError(f'no configs folder found for mmkd_plugin at '
                            f'{package_dir}.')


def resolve(cfg_path: str) -> str:
    """``'mmkd_plugin::x.py'`` -> absolute path of that config."""
    path = osp.join(configs_dir(), cfg_path[len(PREFIX):])
    if not osp.isfile(path):
        raise FileNotFoundError(f'{cfg_path}: no such mmkd_plugin config '
                                f'({path}).')
    return path


def patch_config_module(config_module) -> None:
    """Wrap ``Config._get_cfg_path`` to understand ``mmkd_plugin::``."""
    config_cls = config_module.Config
    if getattr(config_cls, '_mmkd_plugin_scope', False):
        return
    original = config_cls._get_cfg_path

    def _get_cfg_path(cfg_path: str, filename: str):
        if cfg_path.startswith(PREFIX):
            return resolve(cfg_path), 'mmdet'
        return original(cfg_path, filename)

    config_cls._get_cfg_path = staticmethod(_get_cfg_path)
    config_cls._mmkd_plugin_scope = True


class _PatchAfterImport:
    """Meta-path finder that patches mmengine's config module once loaded."""

    def find_spec(self, name, path=None, target=None):
        if name != TARGET_MODULE:
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        if spec is None or spec.loader is None:
            return spec
        exec_module = spec.loader.exec_module

        def exec_then_patch(module):
            exec_module(module)
            patch_config_module(module)

        spec.loader.exec_module = exec_then_patch
        return spec


def install() -> None:
    """Patch now if mmengine's config is loaded, else when it is."""
    if TARGET_MODULE in sys.modules:
        patch_config_module(sys.modules[TARGET_MODULE])
    elif not any(isinstance(f, _PatchAfterImport) for f in sys.meta_path):
        sys.meta_path.insert(0, _PatchAfterImport())


def install_pth() -> str:
    """Write ``mmkd_plugin_scope.pth`` into this interpreter's site-packages.

    Returns:
        str: Path of the written file.
    """
    import sysconfig
    path = osp.join(sysconfig.get_path('purelib'), 'mmkd_plugin_scope.pth')
    with open(path, 'w') as f:
        f.write('import _mmkd_plugin_scope\n')
    return path


if __name__ == '__main__':
    print(f'wrote {install_pth()}')
else:
    install()

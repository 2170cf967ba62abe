# Copyright (c) mmkd_plugin contributors.
"""Teach mmengine the ``mmkd_plugin::`` prefix.

mmengine 0.10 resolves ``'pkg::path'`` only for a fixed list of OpenMMLab
packages, and only for paths with a folder. This module adds
``mmkd_plugin::<config>.py``, resolved to the configs shipped with the
package (``mmkd_plugin/.mim/configs`` of an installed package, else the
``configs`` folder of the source checkout), with the scope of its task:
``mmpretrain`` for the classifier configs under ``classification/``,
``mmdet`` for the rest (each task's components live in its registries), in
the two places mmengine reads such paths:

- ``_base_ = 'mmkd_plugin::x.py'`` in any config: wraps
  ``Config._get_cfg_path``;
- ``mmengine.hub.get_config('mmkd_plugin::x.py')`` and
  ``mmengine.hub.get_model(...)``: wraps both functions; other prefixes go
  to mmengine's own.

The ``mmkd_plugin_scope.pth`` file in site-packages imports this module at
interpreter start, so any OpenMMLab project's config can inherit ours. It is
cheap: each mmengine module is patched only when (and if) it is imported.

``pip install .`` installs the .pth file; editable installs
(``pip install -e .``) skip data files, so run ``python -m
_mmkd_plugin_scope`` once after them (``make`` does).
"""
import importlib.util
import os.path as osp
import sys

PREFIX = 'mmkd_plugin::'
# Default scope of the configs under a folder of configs/; others: mmdet.
FOLDER_SCOPES = {'classification/': 'mmpretrain'}
DEFAULT_SCOPE = 'mmdet'
CONFIG_MODULE = 'mmengine.config.config'
HUB_MODULE = 'mmengine.hub.hub'


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


def scope_of(cfg_path: str) -> str:
    """``'mmkd_plugin::x.py'`` -> the registry scope of that config."""
    relative = cfg_path[len(PREFIX):]
    for folder, scope in FOLDER_SCOPES.items():
        if relative.startswith(folder):
            return scope
    return DEFAULT_SCOPE


def patch_config_module(config_module) -> None:
    """Wrap ``Config._get_cfg_path`` to understand ``mmkd_plugin::``."""
    config_cls = config_module.Config
    if getattr(config_cls, '_mmkd_plugin_scope', False):
        return
    original = config_cls._get_cfg_path

    def _get_cfg_path(cfg_path: str, filename: str):
        if cfg_path.startswith(PREFIX):
            return resolve(cfg_path), scope_of(cfg_path)
        return original(cfg_path, filename)

    config_cls._get_cfg_path = staticmethod(_get_cfg_path)
    config_cls._mmkd_plugin_scope = True


def patch_hub_module(hub_module) -> None:
    """Wrap ``get_config`` and ``get_model`` of ``mmengine.hub``.

    mmengine's versions need the package in their fixed list and a config
    path with a folder, then look for a metafile; ours resolve
    ``mmkd_plugin::`` paths with :func:`resolve` and build the model in
    the registries of its scope (:func:`scope_of`). Other paths go to
    mmengine's functions.
    """
    if getattr(hub_module, '_mmkd_plugin_scope', False):
        return
    mmengine_get_config = hub_module.get_config
    mmengine_get_model = hub_module.get_model

    def get_config(cfg_path: str, pretrained: bool = False):
        if not cfg_path.startswith(PREFIX):
            return mmengine_get_config(cfg_path, pretrained)
        if pretrained:
            raise ValueError(
                f'{cfg_path}: mmkd_plugin configs have no pretrained weights '
                'of their own (the teacher\'s checkpoint is the config\'s '
                'model.teacher_ckpt); call it with pretrained=False.')
        return hub_module.Config.fromfile(resolve(cfg_path))

    def get_model(cfg_path: str, pretrained: bool = False, **kwargs):
        if not cfg_path.startswith(PREFIX):
            return mmengine_get_model(cfg_path, pretrained, **kwargs)
        cfg = get_config(cfg_path, pretrained)
        import mmkd_plugin  # noqa: F401  (registers our components)
        scope = scope_of(cfg_path)
        registry = importlib.import_module(f'{scope}.registry')
        importlib.import_module(f'{scope}.utils').register_all_modules(
            init_default_scope=False)
        with hub_module.DefaultScope.overwrite_default_scope(scope):
            return registry.MODELS.build(cfg.model, default_args=kwargs)

    get_config.__doc__ = mmengine_get_config.__doc__
    get_model.__doc__ = mmengine_get_model.__doc__
    hub_module.get_config, hub_module.get_model = get_config, get_model
    hub_module._mmkd_plugin_scope = True
    # `mmengine.hub` re-exports both; it may have been imported already.
    package = sys.modules.get(HUB_MODULE.rpartition('.')[0])
    if package is not None:
        for name, new in (('get_config', get_config),
                          ('get_model', get_model)):
            if getattr(package, name, None) in (mmengine_get_config,
                                                mmengine_get_model):
                setattr(package, name, new)


PATCHES = {CONFIG_MODULE: patch_config_module, HUB_MODULE: patch_hub_module}


class _PatchAfterImport:
    """Meta-path finder that patches mmengine's modules once loaded."""

    def __init__(self, pending: dict) -> None:
        self.pending = dict(pending)
        self.busy = False

    def find_spec(self, name, path=None, target=None):
        if name not in self.pending or self.busy:
            return None
        patch = self.pending.pop(name)
        if not self.pending:
            sys.meta_path.remove(self)
        self.busy = True
        try:
            spec = importlib.util.find_spec(name)
        finally:
            self.busy = False
        if spec is None or spec.loader is None:
            return spec
        exec_module = spec.loader.exec_module

        def exec_then_patch(module):
            exec_module(module)
            patch(module)

        spec.loader.exec_module = exec_then_patch
        return spec


def install() -> None:
    """Patch mmengine's modules now if loaded, else when they are."""
    pending = {}
    for name, patch in PATCHES.items():
        if name in sys.modules:
            patch(sys.modules[name])
        else:
            pending[name] = patch
    if pending and not any(
            isinstance(f, _PatchAfterImport) for f in sys.meta_path):
        sys.meta_path.insert(0, _PatchAfterImport(pending))


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

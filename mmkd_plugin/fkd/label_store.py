# Copyright (c) mmkd_plugin contributors.
"""The FKD label store: a teacher's soft labels for stored random crops.

FKD (Shen and Xing, "A Fast Knowledge Distillation Framework for Visual
Recognition", ECCV 2022) runs the teacher once over M random-resized crops
(+ horizontal flip) of every training image and stores, per crop, the crop
box, the flip flag and the teacher's top-k probabilities; training replays
exactly those crops (:class:`FKDReplayCrop`) with no teacher.

Layout of a store directory::

    <root>/fkd_meta.json              settings shared by all images
    <root>/<image key>.fkd            one file per image

The image key is the image's path relative to the dataset's image prefix
(``cls/a.png`` -> ``<root>/cls/a.png.fkd``), never a sample index, so a
label can only be read back for the image it was made from. A ``.fkd`` file
holds M packed little-endian records, one per crop:

    - ``box`` float32 (4,): (top / H, left / W, height / H, width / W), the
      crop box normalised by the original image height H and width W, as in
      the authors' store (float32 keeps the replay pixel-exact);
    - ``flip`` bool: horizontal flip applied after the crop;
    - ``indices`` uint16 (k,) (int32 above 65536 classes): the teacher's
      top-k classes, by descending probability;
    - ``probs`` float32 or float16 (k,): their probabilities,
      softmax(teacher logits), temperature 1.

So a file is ``M * (16 + 1 + k * (index bytes + prob bytes))`` bytes:
``M * (17 + 4k)`` with float16 probabilities (k = 5, M = 500: 18.5 KB).
"""
import json
import os
import os.path as osp
from dataclasses import asdict, dataclass, field
from typing import NamedTuple, Optional, Sequence

import numpy as np

META_FILE = 'fkd_meta.json'
LABEL_SUFFIX = '.fkd'
FORMAT_VERSION = 1
PROB_DTYPES = ('float16', 'float32')


@dataclass
class FKDStoreMeta:
    """Settings shared by every image of a store.

    Args:
        num_classes (int): Classes of the teacher's head (C).
        num_crops (int): Crops stored per image (M).
        topk (int): Probabilities stored per crop (k <= C).
        prob_dtype (str): ``'float16'`` or ``'float32'``.
        crop (dict): The crop settings the crops were drawn with: ``scale``
            (h, w) the teacher saw, ``crop_ratio_range``,
            ``aspect_ratio_range``, ``max_attempts``, ``interpolation``,
            ``backend`` and ``flip_prob``.
        seed (int): Seed of the crop draws (image i uses (seed, i)).
        img_prefix (str): The dataset's image prefix the keys are relative to.
        teacher (dict): What produced the labels (config, model type,
            checkpoint and its sha256).
        format_version (int): Layout version of the ``.fkd`` files.
    """

    num_classes: int
    num_crops: int
    topk: int
    prob_dtype: str
    crop: dict
    seed: int
    img_prefix: str
    teacher: dict = field(default_factory=dict)
    format_version: int = FORMAT_VERSION

    def __post_init__(self) -> None:
        if self.prob_dtype not in PROB_DTYPES:
            raise ValueError(f'FKD store: prob_dtype must be one of '
                             f'{PROB_DTYPES}, got "{self.prob_dtype}".')
        if self.num_crops < 1:
            raise ValueError(
                f'FKD store: num_crops must be >= 1, got {self.num_crops}.')
        if not 1 <= self.topk <= self.num_classes:
            raise ValueError(f'FKD store: topk must be in [1, num_classes = '
                             f'{self.num_classes}], got {self.topk}.')

    @property
    def record_dtype(self) -> np.dtype:
        """The packed dtype of one crop's record."""
        index_dtype = '<u2' if self.num_classes <= 65536 else '<i4'
        prob_dtype = '<f2' if self.prob_dtype == 'float16' else '<f4'
        return np.dtype([('box', '<f4', (4, )), ('flip', '?'),
                         ('indices', index_dtype, (self.topk, )),
                         ('probs', prob_dtype, (self.topk, ))])

    @property
    def bytes_per_image(self) -> int:
        """Size of one image's ``.fkd`` file."""
        return self.num_crops * self.record_dtype.itemsize

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> 'FKDStoreMeta':
        values = json.loads(text)
        values['crop'] = _normalise_crop(values['crop'])
        return cls(**values)


def _normalise_crop(crop: dict) -> dict:
    """Crop settings with tuples as lists, as they read back from JSON."""
    return json.loads(json.dumps(crop))


class FKDCrops(NamedTuple):
    """One image's stored crops (M of them).

    Attributes:
        boxes (np.ndarray): (M, 4) float32, normalised (top, left, h, w).
        flips (np.ndarray): (M, ) bool.
        indices (np.ndarray): (M, k) int64, top-k classes.
        probs (np.ndarray): (M, k) float32, their probabilities.
    """

    boxes: np.ndarray
    flips: np.ndarray
    indices: np.ndarray
    probs: np.ndarray


class FKDLabelStore:
    """Reads and writes the per-image files of an FKD label store.

    Use :meth:`create` to start (or resume) a store and :meth:`open` to read
    one.

    Args:
        root (str): The store directory.
        meta (FKDStoreMeta): Its settings.
    """

    def __init__(self, root: str, meta: FKDStoreMeta) -> None:
        self.root = root
        self.meta = meta
        # read once per sample in training: not rebuilt on every call
        self._record_dtype = meta.record_dtype
        self._file_bytes = meta.bytes_per_image

    @classmethod
    def create(cls, root: str, meta: FKDStoreMeta) -> 'FKDLabelStore':
        """Start a store at ``root``, or resume one made with equal
        settings.

        Raises:
            ValueError: ``root`` holds a store made with other settings.
        """
        meta_path = osp.join(root, META_FILE)
        if osp.exists(meta_path):
            existing = cls.open(root).meta
            wanted = FKDStoreMeta.from_json(meta.to_json())
            if existing != wanted:
                raise ValueError(
                    f'FKD store "{root}" was made with other settings; use '
                    f'another output directory or the same settings.\n'
                    f'stored: {existing.to_json()}\nwanted: '
                    f'{wanted.to_json()}')
        else:
            os.makedirs(root, exist_ok=True)
            _write_atomic(meta_path, meta.to_json().encode())
        return cls(root, meta)

    @classmethod
    def open(cls, root: str) -> 'FKDLabelStore':
        """Open an existing store.

        Raises:
            FileNotFoundError: ``root`` has no ``fkd_meta.json``.
        """
        meta_path = osp.join(root, META_FILE)
        if not osp.exists(meta_path):
            raise FileNotFoundError(
                f'FKD label store "{root}": no {META_FILE}; make the store '
                f'with tools/make_soft_labels.py.')
        with open(meta_path) as file:
            meta = FKDStoreMeta.from_json(file.read())
        if meta.format_version != FORMAT_VERSION:
            raise ValueError(
                f'FKD label store "{root}": format version '
                f'{meta.format_version}, this reader knows {FORMAT_VERSION}.')
        return cls(root, meta)

    def key_of(self, img_path: str,
               img_prefix: Optional[str] = None) -> str:
        """The key of an image: its path relative to the image prefix.

        Args:
            img_path (str): The image's path, as the dataset gives it.
            img_prefix (str, optional): Overrides the store's prefix (data
                moved since the store was made).
        """
        prefix = self.meta.img_prefix if img_prefix is None else img_prefix
        key = _strip_prefix(img_path, prefix) if prefix else img_path
        if osp.isabs(key) or key.split(os.sep)[0] == '..':
            raise ValueError(
                f'FKD label store "{self.root}": image "{img_path}" is not '
                f'under the image prefix "{prefix}" the store was made for '
                f'(set img_prefix if the data moved).')
        return key

    def label_path(self, key: str) -> str:
        """The file holding the crops of image ``key``."""
        return osp.join(self.root, key + LABEL_SUFFIX)

    def has(self, key: str) -> bool:
        """Whether image ``key`` has a complete label file."""
        path = self.label_path(key)
        return (osp.exists(path)
                and osp.getsize(path) == self._file_bytes)

    def write(self, key: str, crops: FKDCrops) -> None:
        """Write one image's crops (atomically: no half-written file)."""
        meta = self.meta
        expected = dict(boxes=(meta.num_crops, 4), flips=(meta.num_crops, ),
                        indices=(meta.num_crops, meta.topk),
                        probs=(meta.num_crops, meta.topk))
        for name, shape in expected.items():
            value = np.asarray(getattr(crops, name))
            if value.shape != shape:
                raise ValueError(f'FKD store: {name} of image "{key}" has '
                                 f'shape {value.shape}, expected {shape}.')
        records = np.empty(meta.num_crops, dtype=meta.record_dtype)
        records['box'] = crops.boxes
        records['flip'] = crops.flips
        records['indices'] = crops.indices
        records['probs'] = crops.probs
        path = self.label_path(key)
        os.makedirs(osp.dirname(path), exist_ok=True)
        _write_atomic(path, records.tobytes())

    def read(self, key: str,
             crop_ids: Optional[Sequence[int]] = None) -> FKDCrops:
        """Read one image's crops: all M, or only ``crop_ids``.

        Args:
            key (str): The image's key (:meth:`key_of`).
            crop_ids (Sequence[int], optional): The crops to read, in this
                order; training reads the one or few it replays instead of
                all M (one ``pread`` each). Defaults to None (all).

        Raises:
            FileNotFoundError: The image has no label file.
            ValueError: The file has the wrong size (truncated, or made
                with other settings).
        """
        path = self.label_path(key)
        try:  # one open per sample: no separate existence check
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            raise FileNotFoundError(
                f'FKD label store "{self.root}" has no labels for image '
                f'"{key}" (expected {path}); run tools/make_soft_labels.py '
                f'on this dataset (it resumes an unfinished store).') from None
        try:
            size = os.fstat(fd).st_size
            if size != self._file_bytes:
                raise ValueError(
                    f'FKD label file {path}: {size} bytes, expected '
                    f'{self._file_bytes} ({self.meta.num_crops} crops '
                    f'of {self._record_dtype.itemsize} bytes); delete it and '
                    f're-run tools/make_soft_labels.py.')
            raw = self._read_records(fd, crop_ids)
        finally:
            os.close(fd)
        records = np.frombuffer(raw, dtype=self._record_dtype)
        return FKDCrops(boxes=records['box'].astype(np.float32),
                        flips=records['flip'].copy(),
                        indices=records['indices'].astype(np.int64),
                        probs=records['probs'].astype(np.float32))

    def _read_records(self, fd: int,
                      crop_ids: Optional[Sequence[int]]) -> bytes:
        """The bytes of all records of an open label file, or of
        ``crop_ids``'."""
        if crop_ids is None:
            return os.read(fd, self._file_bytes)
        record_bytes = self._record_dtype.itemsize
        parts = []
        for crop_id in crop_ids:
            if not 0 <= crop_id < self.meta.num_crops:
                raise IndexError(
                    f'FKD label store "{self.root}": crop {crop_id} out of '
                    f'range; the store holds {self.meta.num_crops} crops '
                    f'per image.')
            parts.append(os.pread(fd, record_bytes,
                                  int(crop_id) * record_bytes))
        return b''.join(parts)

    def total_bytes(self) -> int:
        """Bytes of all files under the store (labels and metadata)."""
        total = 0
        for folder, _, files in os.walk(self.root):
            total += sum(osp.getsize(osp.join(folder, f)) for f in files)
        return total


def _strip_prefix(path: str, prefix: str) -> str:
    """``osp.relpath(path, prefix)``, without its two ``abspath`` calls when
    ``path`` is plainly ``prefix`` + separator + a normalised relative path
    (the data loader's case: relpath cost 12 us of a 31 us replay)."""
    head = prefix.rstrip(os.sep) + os.sep
    if path.startswith(head):
        rest = path[len(head):]
        if {'', '.', '..'}.isdisjoint(rest.split(os.sep)):
            return rest
    return osp.relpath(path, prefix)


def _write_atomic(path: str, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file and a rename."""
    tmp_path = f'{path}.tmp{os.getpid()}'
    with open(tmp_path, 'wb') as file:
        file.write(data)
    os.replace(tmp_path, path)

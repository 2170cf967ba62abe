# Copyright (c) mmkd_plugin contributors.
"""Draw what distillation transfers: per FPN level, the teacher's and the
student's spatial attention and FGD's foreground mask over one image.

The attention is FGD's spatial attention, ``H*W * softmax_hw(mean_c |F| /
temp)`` of each neck level (``fgd_attention``); the foreground mask is FGD's
(``fgd_masks_multi``) for the image's boxes. The boxes are the image's
ground truth (``--ann-file``, else the config's test annotation file when
it holds the image), or else the teacher's own detections. Each row also
gives the cosine similarity and the mean absolute (L1) difference of the
two attention maps: numbers to compare before and after distillation.

Usage::

    # a checkpoint of the distilled run, the teacher from the demo
    python tools/visualize_features.py configs/fgd_retina_r101_r18_digits.py \\
        work_dirs/demo/fgd/iter_500.pth data/digit_scenes/val/000000.png \\
        --teacher-ckpt work_dirs/demo/teacher/iter_1000.pth
    # an exported student (tools/export_student.py), two levels, own boxes
    python tools/visualize_features.py configs/fgd_retina_r101_r18.py \\
        r18_fgd.pth demo.jpg --levels 0 1 --ann-file instances_val2017.json \\
        --out attention.png

CKPT is either a DistillationDetector checkpoint (``student.*`` keys, maybe
``distill_losses.*``, which are not needed here, and ``teacher.*``) or a
plain student checkpoint (``backbone.*``, ``neck.*``, ...). The teacher's
weights come from ``--teacher-ckpt``, else from ``teacher.*`` keys in CKPT
(runs with ``save_teacher_in_ckpt``), else from the config's
``model.teacher_ckpt``; a teacher without weights is refused unless
``--allow-random-teacher``.
"""
import argparse
import json
import os.path as osp
from typing import Dict, List, Optional, Sequence, Tuple

import matplotlib

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # noqa: E402
import mmcv  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402
from mmcv.transforms import Compose  # noqa: E402
from mmdet.registry import MODELS  # noqa: E402
from mmdet.structures import DetDataSample  # noqa: E402
from mmdet.utils import register_all_modules  # noqa: E402
from mmengine.config import Config, DictAction  # noqa: E402
from mmengine.dataset import pseudo_collate  # noqa: E402
from mmengine.logging import MMLogger  # noqa: E402
from mmengine.runner.checkpoint import _load_checkpoint  # noqa: E402
from torch import Tensor  # noqa: E402

import mmkd_plugin  # noqa: E402,F401  (registers components)
from mmkd_plugin.models.losses.fgd_loss import fgd_attention  # noqa: E402
from mmkd_plugin.models.losses.fgd_masks import (  # noqa: E402
    fgd_masks as fgd_masks_multi)

DEFAULT_TEMP = 0.5
DEFAULT_SCORE_THR = 0.3
STUDENT_PREFIX = 'student.'
TEACHER_PREFIX = 'teacher.'
COLUMNS = (('teacher', 'teacher attention'), ('student', 'student attention'),
           ('fg', 'FG mask'))


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    """Parse the command line.

    Args:
        argv (Sequence[str], optional): Arguments; ``sys.argv[1:]`` if None.

    Returns:
        argparse.Namespace: The parsed arguments.
    """
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('config', help='DistillationDetector config file')
    parser.add_argument('checkpoint', help='distilled-run checkpoint, or an '
                        'exported plain student checkpoint')
    parser.add_argument('image', help='image file')
    parser.add_argument('--teacher-ckpt', help='teacher checkpoint, '
                        'overrides the config\'s model.teacher_ckpt')
    parser.add_argument('--ann-file', help='COCO json holding the image '
                        '(matched by file name): draw its ground truth')
    parser.add_argument('--levels', type=int, nargs='+',
                        help='FPN level indices to draw (default: all)')
    parser.add_argument('--temp', type=float, help='attention temperature '
                        '(default: the config\'s first FGDLoss temp, else '
                        f'{DEFAULT_TEMP})')
    parser.add_argument('--score-thr', type=float, default=DEFAULT_SCORE_THR,
                        help='score threshold of the teacher detections '
                        'used as boxes when there is no ground truth')
    parser.add_argument('--out', help='output PNG (default: '
                        '<dir of CKPT>/features_<image stem>.png)')
    parser.add_argument('--device', default=None,
                        help='torch device (default: cuda if available)')
    parser.add_argument('--allow-random-teacher', action='store_true',
                        help='run even if the teacher has no checkpoint')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config settings, key=value')
    return parser.parse_args(argv)


# ---------------------------------------------------------------- loading
def load_distill_config(path: str,
                        cfg_options: Optional[dict] = None,
                        teacher_ckpt: Optional[str] = None) -> Config:
    """Load a DistillationDetector config for visualisation.

    The backbones' pretrained ``init_cfg`` is dropped where the weights are
    loaded afterwards anyway: always for the student (CKPT replaces all of
    it), for the teacher when a strictly loaded ``teacher_ckpt`` is set.

    Args:
        path (str): Config file.
        cfg_options (dict, optional): ``--cfg-options`` overrides.
        teacher_ckpt (str, optional): Replaces ``model.teacher_ckpt``.

    Returns:
        Config: The config.
    """
    if not osp.isfile(path):
        raise SystemExit(f'visualize_features: config "{path}" not found.')
    cfg = Config.fromfile(path)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    model_type = str(cfg.get('model', {}).get('type', ''))
    if model_type.split('.')[-1] != 'DistillationDetector':
        raise SystemExit(
            f'visualize_features: "{path}" is not a distillation config: its '
            f'model type is "{model_type}", not "DistillationDetector".')
    if teacher_ckpt is not None:
        cfg.model.teacher_ckpt = teacher_ckpt
    cfg.model.student = _without_pretrained(cfg.model.student)
    if cfg.model.get('teacher_ckpt') and cfg.model.get(
            'teacher_ckpt_strict', True):
        cfg.model.teacher = _without_pretrained(cfg.model.teacher)
    return cfg


def _without_pretrained(spec) -> dict:
    """A model spec (dict or config reference) with backbone init_cfg=None."""
    spec = dict(cfg_path=spec) if isinstance(spec, str) else dict(spec)
    backbone = dict(spec.get('backbone', {}))
    backbone['init_cfg'] = None
    spec['backbone'] = backbone
    return spec


def read_state_dict(path: str) -> Dict[str, Tensor]:
    """Read a checkpoint's state dict.

    Args:
        path (str): Checkpoint path or URL.

    Returns:
        dict[str, Tensor]: Its ``state_dict`` (or the file itself if it has
        no such wrapper).
    """
    if '://' not in path and not osp.isfile(path):
        raise SystemExit(f'visualize_features: checkpoint "{path}" not '
                         'found.')
    checkpoint = _load_checkpoint(path, map_location='cpu')
    state = checkpoint.get('state_dict', checkpoint)
    if not isinstance(state, dict):
        raise SystemExit(f'visualize_features: "{path}" holds no state '
                         'dict.')
    return state


def split_state_dict(state: Dict[str, Tensor], student_keys: Sequence[str],
                     path: str = 'CKPT') -> Tuple[dict, dict, str]:
    """Find the student's (and teacher's) weights in a checkpoint.

    Args:
        state (dict[str, Tensor]): The checkpoint's state dict.
        student_keys (Sequence[str]): The student model's state-dict keys.
        path (str): Checkpoint name for messages.

    Returns:
        tuple[dict, dict, str]: Student weights (keys relative to the
        student), teacher weights (``teacher.*``, prefix removed; often
        empty) and the checkpoint kind, ``'distillation'`` or
        ``'student'``.
    """
    wanted = set(student_keys)
    prefixed = {key[len(STUDENT_PREFIX):]: value
                for key, value in state.items()
                if key.startswith(STUDENT_PREFIX)}
    plain = {key: value for key, value in state.items() if key in wanted}
    n_prefixed = len(wanted & set(prefixed))
    if n_prefixed >= len(plain) and n_prefixed == len(wanted):
        teacher = {key[len(TEACHER_PREFIX):]: value
                   for key, value in state.items()
                   if key.startswith(TEACHER_PREFIX)}
        return prefixed, teacher, 'distillation'
    if len(plain) == len(wanted):
        return plain, {}, 'student'
    raise SystemExit(
        f'visualize_features: {path} matches neither this config\'s '
        f'student nor its DistillationDetector: of the student\'s '
        f'{len(wanted)} weights, {n_prefixed} are in it as "student.*" '
        f'keys and {len(plain)} as plain student keys ({len(state)} keys in '
        'the checkpoint).')


def build_model(cfg: Config, state: Dict[str, Tensor],
                allow_random_teacher: bool = False,
                teacher_from_ckpt: bool = True,
                ckpt_name: str = 'CKPT') -> torch.nn.Module:
    """Build the DistillationDetector, load the teacher, then the student.

    Args:
        cfg (Config): Config from :func:`load_distill_config`.
        state (dict[str, Tensor]): CKPT's state dict.
        allow_random_teacher (bool): Accept a teacher without weights.
        teacher_from_ckpt (bool): Load ``teacher.*`` keys of CKPT into the
            teacher (False when ``--teacher-ckpt`` was given).
        ckpt_name (str): CKPT's name for messages.

    Returns:
        nn.Module: The model in eval mode, on the CPU.
    """
    ckpt_has_teacher = teacher_from_ckpt and any(
        key.startswith(TEACHER_PREFIX) for key in state)
    if not (cfg.model.get('teacher_ckpt') or ckpt_has_teacher
            or allow_random_teacher):
        raise SystemExit(
            'visualize_features: the teacher has no weights (no '
            'model.teacher_ckpt in the config, no --teacher-ckpt, no '
            '"teacher.*" keys in CKPT); the attention of a random teacher '
            'means nothing. Give --teacher-ckpt, or --allow-random-teacher.')
    # The teacher's weights come from CKPT or were checked above.
    cfg.model.allow_random_teacher = True
    model = MODELS.build(cfg.model)
    student, teacher, kind = split_state_dict(
        state, list(model.student.state_dict()), ckpt_name)
    teacher = teacher if teacher_from_ckpt else {}
    try:
        model.init_weights()
        model.student.load_state_dict(student, strict=True)
        if teacher:
            model.teacher.load_state_dict(teacher, strict=True)
    except (FileNotFoundError, RuntimeError, OSError) as err:
        raise SystemExit(f'visualize_features: cannot load the weights: '
                         f'{err}')
    print(f'loaded {ckpt_name} as a {kind} checkpoint ({len(student)} '
          f'student weights' + (', teacher from it' if teacher else '') + ')')
    return model.eval()


# ---------------------------------------------------------------- inputs
def check_image(path: str) -> None:
    """Refuse a missing or undecodable image.

    Args:
        path (str): Image file.
    """
    if not osp.isfile(path):
        raise SystemExit(f'visualize_features: image "{path}" not found.')
    with open(path, 'rb') as file:
        image = mmcv.imfrombytes(file.read())
    if image is None:
        raise SystemExit(f'visualize_features: cannot read "{path}" as an '
                         'image.')


def preprocess(model: torch.nn.Module, cfg: Config,
               image_path: str) -> Tuple[Tensor, DetDataSample]:
    """Run the config's test pipeline and the model's data preprocessor.

    Args:
        model (nn.Module): The DistillationDetector.
        cfg (Config): Its config (``test_dataloader.dataset.pipeline``).
        image_path (str): Image file.

    Returns:
        tuple[Tensor, DetDataSample]: Inputs (1, 3, H_pad, W_pad), in the
        student's normalisation, and the sample with ``img_shape``,
        ``scale_factor`` and ``batch_input_shape``.
    """
    steps = [step for step in cfg.test_dataloader.dataset.pipeline
             if str(step['type']).split('.')[-1] != 'LoadAnnotations']
    packed = Compose(steps)(dict(img_path=image_path, img_id=0))
    data = model.data_preprocessor(pseudo_collate([packed]), False)
    return data['inputs'], data['data_samples'][0]


def fgd_temp(cfg: Config) -> float:
    """The ``temp`` of the config's first FGDLoss term, else the default.

    Args:
        cfg (Config): DistillationDetector config.

    Returns:
        float: The attention temperature.
    """
    for term in cfg.model.get('distill', []):
        loss = term.get('loss', {})
        if str(loss.get('type', '')).split('.')[-1] == 'FGDLoss':
            return float(loss.get('temp', DEFAULT_TEMP))
    return DEFAULT_TEMP


# ---------------------------------------------------------------- boxes
def gt_boxes(ann_file: str, image_path: str, scale_factor: Sequence[float],
             image_dir: Optional[str] = None) -> Optional[Tensor]:
    """The image's ground-truth boxes from a COCO json, in the input frame.

    Args:
        ann_file (str): COCO annotation file.
        image_path (str): The image. Without ``image_dir`` it matches an
            entry whose ``file_name`` ends its path; with ``image_dir`` it
            must be the file ``image_dir/file_name``.
        scale_factor (Sequence[float]): (w_scale, h_scale) of the pipeline.
        image_dir (str, optional): The dataset's image folder.

    Returns:
        Tensor | None: (k, 4) xyxy boxes scaled to the network input (crowd
        boxes left out), or None when the file does not hold the image.
    """
    with open(ann_file, encoding='utf-8') as file:
        coco = json.load(file)
    image_id = _find_image_id(coco.get('images', []), image_path, image_dir)
    if image_id is None:
        return None
    boxes = [ann['bbox'] for ann in coco.get('annotations', [])
             if ann.get('image_id') == image_id and not ann.get('iscrowd')]
    xywh = torch.tensor(boxes, dtype=torch.float32).view(-1, 4)
    xyxy = torch.cat([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], dim=1)
    w_scale, h_scale = scale_factor
    return xyxy * xyxy.new_tensor([w_scale, h_scale, w_scale, h_scale])


def _find_image_id(images: List[dict], image_path: str,
                   image_dir: Optional[str]) -> Optional[int]:
    """Id of the COCO image entry that is ``image_path``, or None."""
    real = osp.realpath(image_path)
    for entry in images:
        name = entry.get('file_name', '')
        if image_dir is not None:
            found = osp.realpath(osp.join(image_dir, name)) == real
        else:
            found = bool(name) and (real == osp.realpath(name) or
                                    real.endswith(osp.sep + name.lstrip('/')))
        if found:
            return entry['id']
    return None


def config_ann_file(cfg: Config) -> Tuple[Optional[str], Optional[str]]:
    """The config's test annotation file and image folder, if it has them.

    Args:
        cfg (Config): The config.

    Returns:
        tuple[str | None, str | None]: ``data_root/ann_file`` and
        ``data_root/data_prefix.img``; None where not set.
    """
    dataset = cfg.get('test_dataloader', {}).get('dataset', {})
    root = dataset.get('data_root') or ''
    ann_file = dataset.get('ann_file')
    img_dir = (dataset.get('data_prefix') or {}).get('img')
    return (osp.join(root, ann_file) if ann_file else None,
            osp.join(root, img_dir) if img_dir is not None else None)


@torch.no_grad()
def teacher_detections(model: torch.nn.Module, inputs: Tensor,
                       data_sample: DetDataSample,
                       score_thr: float) -> Tensor:
    """The teacher's boxes with score >= ``score_thr``, in the input frame.

    Args:
        model (nn.Module): The DistillationDetector.
        inputs (Tensor): Student-normalised inputs (1, 3, H, W).
        data_sample (DetDataSample): The image's sample.
        score_thr (float): Score threshold.

    Returns:
        Tensor: (k, 4) xyxy boxes.
    """
    result = model.teacher.predict(model.teacher_inputs(inputs),
                                   [data_sample], rescale=False)[0]
    pred = result.pred_instances
    return pred.bboxes[pred.scores >= score_thr].float().cpu()


def choose_boxes(args: argparse.Namespace, cfg: Config,
                 model: torch.nn.Module, inputs: Tensor,
                 data_sample: DetDataSample) -> Tuple[Tensor, str]:
    """Ground truth if some annotation file holds the image, else the
    teacher's detections.

    Args:
        args (argparse.Namespace): ``ann_file``, ``image``, ``score_thr``.
        cfg (Config): The config (its test annotation file is tried).
        model (nn.Module): The DistillationDetector.
        inputs (Tensor): Student-normalised inputs.
        data_sample (DetDataSample): The image's sample.

    Returns:
        tuple[Tensor, str]: (k, 4) xyxy boxes in the input frame and where
        they come from.
    """
    scale = data_sample.metainfo.get('scale_factor', (1.0, 1.0))
    if args.ann_file is not None:
        if not osp.isfile(args.ann_file):
            raise SystemExit(f'visualize_features: --ann-file '
                             f'"{args.ann_file}" not found.')
        boxes = gt_boxes(args.ann_file, args.image, scale)
        if boxes is not None:
            return boxes, f'ground truth ({osp.basename(args.ann_file)})'
        print(f'note: {args.ann_file} does not hold {args.image}')
    else:
        ann_file, img_dir = config_ann_file(cfg)
        if ann_file is not None and osp.isfile(ann_file):
            boxes = gt_boxes(ann_file, args.image, scale, img_dir)
            if boxes is not None:
                return boxes, f'ground truth ({osp.basename(ann_file)})'
    boxes = teacher_detections(model, inputs, data_sample, args.score_thr)
    return boxes, f'teacher detections, score >= {args.score_thr:g}'


# ---------------------------------------------------------------- maps
@torch.no_grad()
def feature_maps(model: torch.nn.Module, inputs: Tensor,
                 data_sample: DetDataSample, boxes: Tensor,
                 temp: float) -> List[dict]:
    """Teacher and student spatial attention and FGD's fg mask per level.

    Args:
        model (nn.Module): The DistillationDetector, in eval mode.
        inputs (Tensor): Student-normalised inputs (1, 3, H_pad, W_pad).
        data_sample (DetDataSample): Sample with ``batch_input_shape``.
        boxes (Tensor): (k, 4) xyxy boxes in the padded input frame.
        temp (float): Attention temperature.

    Returns:
        list[dict]: Per neck level, ``teacher`` and ``student`` (H, W)
        float arrays of ``fgd_attention`` (each sums to H*W), ``fg`` the
        (H, W) foreground mask, ``stride`` (input height / feature height),
        ``cosine`` (cosine similarity of the two attention maps) and ``l1``
        (their mean absolute difference per cell).
    """
    student_feats = model.student.extract_feat(inputs)
    teacher_feats = model.teacher.extract_feat(model.teacher_inputs(inputs))
    if len(student_feats) != len(teacher_feats):
        raise ValueError(f'{len(student_feats)} student levels vs '
                         f'{len(teacher_feats)} teacher levels.')
    batch_shape = tuple(data_sample.metainfo['batch_input_shape'])
    hws = [tuple(feat.shape[-2:]) for feat in teacher_feats]
    masks = fgd_masks_multi([boxes.to(inputs.device).float()], batch_shape,
                            hws)
    levels = []
    for s_feat, t_feat, (fg, _) in zip(student_feats, teacher_feats, masks):
        s_att = fgd_attention(s_feat.float(), temp)[0][0]
        t_att = fgd_attention(t_feat.float(), temp)[0][0]
        stride = batch_shape[0] / t_feat.shape[-2]
        levels.append(dict(
            teacher=t_att.cpu().numpy(), student=s_att.cpu().numpy(),
            fg=fg[0].cpu().numpy(),
            stride=int(stride) if stride == int(stride) else stride,
            cosine=float(F.cosine_similarity(t_att.flatten(),
                                             s_att.flatten(), dim=0)),
            l1=float((t_att - s_att).abs().mean())))
    return levels


def select_levels(maps: List[dict],
                  levels: Optional[Sequence[int]]) -> List[Tuple[int, dict]]:
    """Pick levels by index, refusing indices out of range.

    Args:
        maps (list[dict]): All levels from :func:`feature_maps`.
        levels (Sequence[int], optional): Indices; all if None.

    Returns:
        list[tuple[int, dict]]: (index, maps) pairs.
    """
    if levels is None:
        return list(enumerate(maps))
    bad = [index for index in levels if not 0 <= index < len(maps)]
    if bad:
        raise SystemExit(f'visualize_features: --levels {bad} out of range:'
                         f' the neck has {len(maps)} levels (0-'
                         f'{len(maps) - 1}).')
    return [(index, maps[index]) for index in levels]


# ---------------------------------------------------------------- drawing
def network_image(model: torch.nn.Module, inputs: Tensor,
                  data_sample: DetDataSample) -> np.ndarray:
    """The image as the network sees it: un-normalised, cropped, RGB.

    Args:
        model (nn.Module): Model whose ``data_preprocessor`` made ``inputs``.
        inputs (Tensor): Normalised inputs (1, 3, H_pad, W_pad).
        data_sample (DetDataSample): Sample with ``img_shape``.

    Returns:
        np.ndarray: uint8 (h, w, 3) RGB image of ``img_shape``.
    """
    prep = model.data_preprocessor
    image = inputs[0].float()
    if getattr(prep, '_enable_normalize', False):
        image = image * prep.std.to(image) + prep.mean.to(image)
    if not getattr(prep, '_channel_conversion', False):
        image = image.flip(0)  # mmcv loads BGR
    height, width = data_sample.metainfo['img_shape'][:2]
    image = image[:, :height, :width].permute(1, 2, 0)
    return image.clamp(0, 255).round().byte().cpu().numpy()


def upsample(array: np.ndarray, batch_shape: Sequence[int],
             img_shape: Sequence[int], mode: str) -> np.ndarray:
    """Resize a feature-grid map to the padded input and crop the image.

    Args:
        array (np.ndarray): (H, W) map.
        batch_shape (Sequence[int]): (H_pad, W_pad) of the input.
        img_shape (Sequence[int]): (h, w) of the image inside it.
        mode (str): ``'bilinear'`` or ``'nearest'``.

    Returns:
        np.ndarray: (h, w) map.
    """
    grid = torch.from_numpy(array)[None, None].float()
    extra = dict(align_corners=False) if mode == 'bilinear' else {}
    big = F.interpolate(grid, size=tuple(batch_shape), mode=mode, **extra)
    return big[0, 0, :img_shape[0], :img_shape[1]].numpy()


def draw_figure(image: np.ndarray, rows: List[Tuple[int, dict]],
                boxes: Tensor, batch_shape: Sequence[int], title: str,
                out: str) -> None:
    """Save the figure: one row per level, teacher / student / fg columns.

    Args:
        image (np.ndarray): (h, w, 3) RGB image from :func:`network_image`.
        rows (list[tuple[int, dict]]): Levels from :func:`select_levels`.
        boxes (Tensor): (k, 4) xyxy boxes in the input frame.
        batch_shape (Sequence[int]): (H_pad, W_pad) of the input.
        title (str): Figure title.
        out (str): Output PNG path.
    """
    panel_h = 3.2 * image.shape[0] / image.shape[1] + 0.6
    fig, axes = plt.subplots(len(rows), len(COLUMNS), squeeze=False,
                             figsize=(3.2 * len(COLUMNS),
                                      panel_h * len(rows) + 0.8))
    for ax_row, (index, maps) in zip(axes, rows):
        for ax, (key, name) in zip(ax_row, COLUMNS):
            mode = 'nearest' if key == 'fg' else 'bilinear'
            big = upsample(maps[key], batch_shape, image.shape[:2], mode)
            if key == 'fg':  # only the box cells, the rest stays clear
                big = np.ma.masked_equal(big, 0)
            low, high = _colour_range(maps, key)
            ax.imshow(image)
            ax.imshow(big, cmap='jet', alpha=0.55, vmin=low, vmax=high,
                      interpolation='nearest')
            _draw_boxes(ax, boxes)
            ax.set_title(f'{name}\nmax {maps[key].max():.3g}', fontsize=9)
            ax.set_xticks([])
            ax.set_yticks([])
        ax_row[0].set_ylabel(
            f'level {index}, stride {maps["stride"]}\n'
            f'cos {maps["cosine"]:.3f}, L1 {maps["l1"]:.3f}', fontsize=9)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def _colour_range(maps: dict, key: str) -> Tuple[float, float]:
    """Colour limits: [0, max] for the mask; for the attention, the range
    of both maps of the level, so teacher and student compare directly."""
    if key == 'fg':
        return 0.0, max(float(maps['fg'].max()), 1e-12)
    both = np.stack([maps['teacher'], maps['student']])
    low, high = float(both.min()), float(both.max())
    return low, max(high, low + 1e-6)


def _draw_boxes(ax, boxes: Tensor) -> None:
    """Outline xyxy boxes on an axis."""
    for x1, y1, x2, y2 in boxes.tolist():
        ax.add_patch(Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False,
                               edgecolor='white', linewidth=1.0))


# ---------------------------------------------------------------- main
def default_out(checkpoint: str, image: str) -> str:
    """``<dir of CKPT>/features_<image stem>.png``.

    Args:
        checkpoint (str): CKPT path.
        image (str): Image path.

    Returns:
        str: The output path.
    """
    stem = osp.splitext(osp.basename(image))[0]
    return osp.join(osp.dirname(checkpoint), f'features_{stem}.png')


def main(argv: Optional[Sequence[str]] = None) -> str:
    """Run the tool.

    Args:
        argv (Sequence[str], optional): Arguments; ``sys.argv[1:]`` if None.

    Returns:
        str: Path of the written PNG.
    """
    args = parse_args(argv)
    register_all_modules()
    # Keep mmengine's per-parameter init report off the console.
    MMLogger.get_instance('visualize_features', log_level='WARNING')
    cfg = load_distill_config(args.config, args.cfg_options,
                              args.teacher_ckpt)
    check_image(args.image)
    state = read_state_dict(args.checkpoint)
    device = args.device or ('cuda' if torch.cuda.is_available() else 'cpu')
    model = build_model(cfg, state, args.allow_random_teacher,
                        teacher_from_ckpt=args.teacher_ckpt is None,
                        ckpt_name=osp.basename(args.checkpoint)).to(device)
    inputs, sample = preprocess(model, cfg, args.image)
    boxes, source = choose_boxes(args, cfg, model, inputs, sample)
    print(f'boxes: {len(boxes)} from {source}')
    if len(boxes) == 0:
        print('note: no boxes, the fg mask is all zero')
    temp = fgd_temp(cfg) if args.temp is None else args.temp
    rows = select_levels(feature_maps(model, inputs, sample, boxes, temp),
                         args.levels)
    for index, maps in rows:
        print(f'level {index} (stride {maps["stride"]}): attention cosine '
              f'{maps["cosine"]:.4f}, L1 {maps["l1"]:.4f}; max teacher '
              f'{maps["teacher"].max():.3f}, student '
              f'{maps["student"].max():.3f}')
    out = args.out or default_out(args.checkpoint, args.image)
    title = (f'{osp.basename(args.config)} | {osp.basename(args.checkpoint)}'
             f' | {osp.basename(args.image)}\nboxes: {source} ({len(boxes)})'
             f', temp {temp:g}')
    draw_figure(network_image(model, inputs, sample), rows, boxes.cpu(),
                sample.metainfo['batch_input_shape'], title, out)
    print(f'wrote {out}')
    return out


if __name__ == '__main__':
    main()

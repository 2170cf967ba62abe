# Copyright (c) mmkd_plugin contributors.
"""Draw what distillation transfers: per FPN level, the teacher's and the
student's spatial attention and FGD's foreground mask over one image.

The attention is FGD's spatial attention, ``H*W * softmax_hw(mean_c |F| /
temp)`` of each neck level (``fgd_attention``); the foreground mask is FGD's
(``fgd_masks``) for the image's boxes. The boxes are the image's
ground truth (``--ann-file``, else the config's test annotation file when
it holds the image), or else the teacher's own detections. Each row also
gives the cosine similarity and the mean absolute (L1) difference of the
two attention maps: numbers to compare before and after distillation.

Usage::

    # a checkpoint of the distilled run, the teacher from the demo
    python tools/visualize_features.py configs/fgd_retina_r18-w32_r18-w8_digits.py \\
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
import os.path as osp
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import mmcv
import numpy as np
import torch
import torch.nn.functional as F
from mmcv.transforms import Compose
from mmdet.registry import MODELS
from mmdet.structures import DetDataSample
from mmdet.structures.bbox import scale_boxes
from mmdet.utils import register_all_modules
from mmengine.config import Config, DictAction
from mmengine.dataset import pseudo_collate
from mmengine.logging import MMLogger
from mmengine.runner.checkpoint import _load_checkpoint
from mmengine.visualization import Visualizer
from pycocotools.coco import COCO
from torch import Tensor

import mmkd_plugin  # noqa: F401  (registers components)
from mmkd_plugin.models.losses.fgd_loss import fgd_attention
from mmkd_plugin.models.losses.fgd_masks import fgd_masks
from mmkd_plugin.utils import DistillationState, split_distillation_state

DEFAULT_TEMP = 0.5
DEFAULT_SCORE_THR = 0.3
PANEL_WIDTH = 320  # pixels of each drawn map
CAPTION_HEIGHT = 40  # pixels of the text above each row (and the title)
FONT_SIZE = 9
HEAT_ALPHA = 0.55  # weight of the heat map over the image
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


def build_model(cfg: Config, state: Dict[str, Tensor],
                allow_random_teacher: bool = False,
                teacher_from_ckpt: bool = True,
                ckpt_name: str = 'CKPT') -> torch.nn.Module:
    """Build the DistillationDetector, load the teacher, then the student.

    CKPT's keys are split as the detector splits them when it loads a
    checkpoint (:func:`~mmkd_plugin.utils.split_distillation_state`).

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
    parts = split_distillation_state(state)
    teacher = parts.teacher if teacher_from_ckpt else {}
    if not (cfg.model.get('teacher_ckpt') or teacher or allow_random_teacher):
        raise SystemExit(
            'visualize_features: the teacher has no weights (no '
            'model.teacher_ckpt in the config, no --teacher-ckpt, no '
            '"teacher.*" keys in CKPT); the attention of a random teacher '
            'means nothing. Give --teacher-ckpt, or --allow-random-teacher.')
    # The teacher's weights come from CKPT or were checked above.
    cfg.model.allow_random_teacher = True
    model = MODELS.build(cfg.model)
    _check_student_weights(parts, model.student, ckpt_name, len(state))
    try:
        model.init_weights()
        model.student.load_state_dict(parts.student, strict=True)
        if teacher:
            model.teacher.load_state_dict(teacher, strict=True)
    except (FileNotFoundError, RuntimeError, OSError) as err:
        raise SystemExit(f'visualize_features: cannot load the weights: '
                         f'{err}')
    kind = 'distillation' if parts.is_distillation else 'student'
    print(f'loaded {ckpt_name} as a {kind} checkpoint ({len(parts.student)} '
          f'student weights' + (', teacher from it' if teacher else '') + ')')
    return model.eval()


def _check_student_weights(parts: DistillationState,
                           student: torch.nn.Module, ckpt_name: str,
                           num_keys: int) -> None:
    """Refuse a checkpoint that lacks some of the student's weights."""
    wanted = set(student.state_dict())
    found = len(wanted & set(parts.student))
    if found == len(wanted):
        return
    prefixed, plain = (found, 0) if parts.is_distillation else (0, found)
    raise SystemExit(
        f'visualize_features: {ckpt_name} matches neither this config\'s '
        f'student nor its DistillationDetector: of the student\'s '
        f'{len(wanted)} weights, {prefixed} are in it as "student.*" '
        f'keys and {plain} as plain student keys ({num_keys} keys in '
        'the checkpoint).')


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
    coco = COCO(ann_file)
    image_id = _find_image_id(coco.imgs.values(), image_path, image_dir)
    if image_id is None:
        return None
    anns = coco.loadAnns(coco.getAnnIds(imgIds=[image_id]))
    boxes = [ann['bbox'] for ann in anns if not ann.get('iscrowd')]
    xyxy = torch.tensor(boxes, dtype=torch.float32).view(-1, 4)
    xyxy[:, 2:] += xyxy[:, :2]
    return scale_boxes(xyxy, scale_factor)


def _find_image_id(images: Iterable[dict], image_path: str,
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
    boxes = [boxes.to(inputs.device).float()]
    masks = fgd_masks(boxes, batch_shape,
                      [feat.shape[-2:] for feat in teacher_feats])
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
def draw_figure(image_path: str, rows: List[Tuple[int, dict]],
                boxes: Tensor, data_sample: DetDataSample, title: str,
                out: str) -> None:
    """Save the figure: the title, then per level a caption and three
    panels, the teacher's and the student's attention and the fg mask, each
    over the image as the network sees it (resized, without the padding),
    with the boxes.

    Args:
        image_path (str): The image file.
        rows (list[tuple[int, dict]]): Levels from :func:`select_levels`.
        boxes (Tensor): (k, 4) xyxy boxes in the input frame.
        data_sample (DetDataSample): Sample with ``img_shape`` and
            ``batch_input_shape``.
        title (str): Figure title.
        out (str): Output PNG path.
    """
    img_h, img_w = data_sample.metainfo['img_shape'][:2]
    scale = PANEL_WIDTH / img_w
    panel_h = round(img_h * scale)
    padded_hw = [round(size * scale)
                 for size in data_sample.metainfo['batch_input_shape']]
    image = mmcv.imresize(mmcv.imread(image_path, channel_order='rgb'),
                          (PANEL_WIDTH, panel_h))
    blocks, texts, text_xys, panel_xys = [_text_strip()], [title], [(4, 4)], []
    for index, maps in rows:
        top = sum(len(block) for block in blocks)
        texts.append(f'level {index}, stride {maps["stride"]}: cos '
                     f'{maps["cosine"]:.3f}, L1 {maps["l1"]:.3f}')
        text_xys.append((4, top + 4))
        for column, (key, name) in enumerate(COLUMNS):
            texts.append(f'{name}, max {maps[key].max():.3g}')
            text_xys.append((column * PANEL_WIDTH + 4, top + 22))
            panel_xys.append((column * PANEL_WIDTH, top + CAPTION_HEIGHT))
        maps_on_panel = {
            key: _resize_crop(maps[key], padded_hw, (panel_h, PANEL_WIDTH),
                              'nearest' if key == 'fg' else 'bilinear')
            for key, _ in COLUMNS
        }
        blocks += [_text_strip(), _heat_maps(image, **maps_on_panel)]

    visualizer = Visualizer(image=np.concatenate(blocks))
    panel_boxes = scale_boxes(boxes.float(), (scale, scale))
    panel_boxes[:, 0::2] = panel_boxes[:, 0::2].clamp(0, PANEL_WIDTH - 1)
    panel_boxes[:, 1::2] = panel_boxes[:, 1::2].clamp(0, panel_h - 1)
    if len(panel_boxes):
        visualizer.draw_bboxes(
            torch.cat([panel_boxes + panel_boxes.new_tensor(xy * 2)
                       for xy in panel_xys]),
            edge_colors='white', line_widths=1, alpha=1.0)
    visualizer.draw_texts(texts, np.array(text_xys), font_sizes=FONT_SIZE,
                          colors='black')
    mmcv.imwrite(mmcv.rgb2bgr(visualizer.get_image()), out)


def _resize_crop(array: np.ndarray, padded_hw: Sequence[int],
                 image_hw: Sequence[int], mode: str) -> Tensor:
    """A feature-grid map resized to the padded input, cropped to the image.

    Args:
        array (np.ndarray): (H, W) map.
        padded_hw (Sequence[int]): The padded input's size at panel scale.
        image_hw (Sequence[int]): The image's size at panel scale.
        mode (str): ``'bilinear'`` or ``'nearest'``.

    Returns:
        Tensor: (1, h, w) map.
    """
    grid = torch.from_numpy(array)[None, None].float()
    return F.interpolate(grid, size=padded_hw,
                         mode=mode)[0, :, :image_hw[0], :image_hw[1]]


def _heat_maps(image: np.ndarray, teacher: Tensor, student: Tensor,
               fg: Tensor) -> np.ndarray:
    """The three panels of a level, side by side.

    The two attention maps are drawn as one heat map, so ``draw_featmap``'s
    min-max colours put them on one scale; the fg mask colours only the
    cells it covers.

    Args:
        image (np.ndarray): (h, w, 3) RGB image.
        teacher (Tensor): (1, h, w) teacher attention.
        student (Tensor): (1, h, w) student attention.
        fg (Tensor): (1, h, w) foreground mask.

    Returns:
        np.ndarray: (h, 3 * w, 3) RGB panels.
    """
    attention = Visualizer.draw_featmap(torch.cat([teacher, student], -1),
                                        np.hstack([image, image]),
                                        alpha=HEAT_ALPHA)
    fg_heat = Visualizer.draw_featmap(fg, image, alpha=HEAT_ALPHA)
    fg_panel = np.where(fg[0, :, :, None].numpy() > 0, fg_heat, image)
    return np.hstack([attention, fg_panel])


def _text_strip() -> np.ndarray:
    """A white strip as wide as the three panels, for text."""
    return np.full((CAPTION_HEIGHT, 3 * PANEL_WIDTH, 3), 255, np.uint8)


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
    draw_figure(args.image, rows, boxes.cpu(), sample, title, out)
    print(f'wrote {out}')
    return out


if __name__ == '__main__':
    main()

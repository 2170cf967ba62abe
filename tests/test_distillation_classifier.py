# Copyright (c) mmkd_plugin contributors.
"""DistillationClassifier: the detector's guarantees on mmpretrain models,
logit terms with labels, and build-time refusals."""
import pytest
import torch
import torch.nn.functional as F

pytest.importorskip('mmpretrain')
from mmengine.registry import DefaultScope  # noqa: E402
from mmpretrain.registry import MODELS  # noqa: E402
from mmpretrain.structures import DataSample  # noqa: E402

from mmkd_plugin.utils.export import student_state_dict  # noqa: E402

NUM_CLASSES = 5


def tiny_classifier(width: int, num_classes: int = NUM_CLASSES,
                    out_indices=(3, )) -> dict:
    return dict(
        type='ImageClassifier',
        backbone=dict(type='ResNet', depth=18, base_channels=width,
                      stem_channels=width, out_indices=out_indices),
        neck=dict(type='GlobalAveragePooling'),
        head=dict(type='LinearClsHead', num_classes=num_classes,
                  in_channels=width * 8,
                  loss=dict(type='CrossEntropyLoss')))


def build(distill, **kwargs):
    cfg = dict(type='DistillationClassifier', student=tiny_classifier(4),
               teacher=tiny_classifier(8), distill=distill,
               data_preprocessor=dict(mean=[0., 0., 0.], std=[1., 1., 1.]),
               allow_random_teacher=True, probe_input_size=(32, 32))
    cfg.update(kwargs)
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        model = MODELS.build(cfg)
    model.init_weights()
    return model


def batch(labels=(0, 3, 1, 4)):
    torch.manual_seed(0)
    inputs = torch.randn(len(labels), 3, 32, 32)
    return inputs, [DataSample().set_gt_label(label) for label in labels]


def reference_kd(student_logits, teacher_logits, temperature):
    """Hinton KD: T^2 * mean_b sum_c q_c (log q_c - log p_c), float64."""
    s = student_logits.double() / temperature
    t = teacher_logits.double() / temperature
    q = t.softmax(1)
    return temperature**2 * (q * (q.log() - s.log_softmax(1))).sum(1).mean()


def test_kd_term_and_weighted_student_loss_match_reference(one_thread):
    model = build([dict(student='head', loss=dict(type='KDLoss',
                                                  temperature=3.0))],
                  student_loss_weight=0.25)
    with torch.no_grad():  # logits far from uniform: a KL well above 0
        for net in (model.student, model.teacher):
            net.head.fc.weight.normal_(std=2.0)
    model.train()
    inputs, samples = batch()
    losses = model.loss(inputs, samples)
    assert set(losses) == {'loss_cls', 'loss_kd_logits'}
    student_logits = model.student(inputs, mode='tensor')  # same BN stats
    with torch.no_grad():
        teacher_logits = model.teacher(inputs, mode='tensor')
    labels = torch.tensor([0, 3, 1, 4])
    torch.testing.assert_close(
        losses['loss_kd_logits'].double(),
        reference_kd(student_logits, teacher_logits, 3.0), rtol=1e-5,
        atol=1e-7)
    torch.testing.assert_close(
        losses['loss_cls'], 0.25 * F.cross_entropy(student_logits, labels),
        rtol=1e-5, atol=1e-7)


def test_logged_loss_is_the_total(one_thread):
    """mmpretrain's head names its cross-entropy 'loss', the key mmengine
    logs the optimised total under; the wrapper renames it so that the log
    shows the total and the cross-entropy apart."""
    model = build([dict(student='head', loss=dict(type='KDLoss',
                                                  temperature=3.0))])
    model.train()
    inputs, samples = batch()
    losses = model.loss(inputs, samples)
    total, log_vars = model.parse_losses(losses)
    expected = losses['loss_cls'] + losses['loss_kd_logits']
    torch.testing.assert_close(total, expected)
    assert float(log_vars['loss']) == pytest.approx(expected.item())
    assert float(log_vars['loss_cls']) == pytest.approx(
        losses['loss_cls'].item())


def test_labels_reach_logit_losses(one_thread):
    model = build([dict(student='head', loss=dict(type='DKDLoss'))])
    inputs, samples = batch(labels=(2, 2, 0, 1))
    seen = []
    loss = model.distill_losses['loss_dkd_logits']
    loss.register_forward_hook(
        lambda module, args, kwargs, out: seen.append(kwargs['labels']),
        with_kwargs=True)
    model.loss(inputs, samples)
    assert seen[0].tolist() == [2, 2, 0, 1]


def test_mixed_labels_give_the_larger_share():
    model = build([dict(student='head', loss=dict(type='WSLDLoss'))])
    samples = [DataSample().set_gt_label(0).set_gt_score(score)
               for score in (torch.tensor([0.7, 0, 0.3, 0, 0]),
                             torch.tensor([0, 0.4, 0, 0, 0.6]))]
    assert model._hard_labels(samples).tolist() == [0, 4]
    multi = [DataSample().set_gt_label([1, 2])]
    with pytest.raises(ValueError, match='one class per sample'):
        model._hard_labels(multi)


def test_teacher_frozen_outside_the_module_tree(one_thread):
    model = build([dict(student='head', loss=dict(type='DISTLoss')),
                   dict(student='backbone', loss=dict(type='FitNetLoss'))])
    model.train()
    assert not model.teacher.training
    teacher_ids = {id(p) for p in model.teacher.parameters()}
    assert not teacher_ids & {id(p) for p in model.parameters()}
    assert not any(k.startswith('teacher.') for k in model.state_dict())
    total, _ = model.parse_losses(model.loss(*batch()))
    total.backward()
    assert all(p.grad is None for p in model.teacher.parameters())
    assert model.student.backbone.conv1.weight.grad is not None


def test_predict_and_export_are_the_students(one_thread, tmp_path):
    model = build([dict(student='head', loss=dict(type='KDLoss'))])
    model.eval()
    inputs, samples = batch()
    predicted = model.predict(inputs, samples)
    path = str(tmp_path / 'distill.pth')
    torch.save({'state_dict': model.state_dict()}, path)
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        plain = MODELS.build(tiny_classifier(4))
    plain.load_state_dict(student_state_dict(torch.load(path)), strict=True)
    plain.eval()
    expected = plain.predict(inputs, [DataSample() for _ in samples])
    for got, want in zip(predicted, expected):
        torch.testing.assert_close(got.pred_score, want.pred_score)


def test_multi_level_loss_gets_all_levels(one_thread):
    model = build(
        [dict(student='backbone', levels=[1, 2, 3],
              loss=dict(type='ReviewKDLoss'))],
        student=tiny_classifier(4, out_indices=(0, 1, 2, 3)),
        teacher=tiny_classifier(8, out_indices=(0, 1, 2, 3)))
    assert list(model.distill_losses) == ['loss_reviewkd_backbone']
    review = model.distill_losses['loss_reviewkd_backbone']
    assert list(review.student_channels) == [8, 16, 32]
    assert list(review.teacher_channels) == [16, 32, 64]
    losses = model.loss(*batch())
    assert torch.isfinite(losses['loss_reviewkd_backbone'])


def test_build_time_refusals():
    with pytest.raises(ValueError, match='different numbers of classes'):
        build([dict(student='head', loss=dict(type='KDLoss'))],
              teacher=tiny_classifier(8, num_classes=7))
    with pytest.raises(ValueError, match='put it on the "head"'):
        build([dict(student='backbone', loss=dict(type='KDLoss'))])
    with pytest.raises(ValueError, match='student_loss_weight'):
        build([dict(student='head', loss=dict(type='KDLoss'))],
              student_loss_weight=-1.0)
    with pytest.raises(ValueError, match='temperature must be positive'):
        build([dict(student='head',
                    loss=dict(type='KDLoss', temperature=0.0))])

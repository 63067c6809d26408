"""Tests of the pipeline: real detectors, the shipped classifier model, labels, errors.

Expected labels come from the photos themselves: the bundled portraits (scikit-image's
astronaut, matplotlib's Grace Hopper) wear no mask, and the same photos with a surgical mask
drawn over the lower face (as in the demo video) wear one.
"""
import functools
import math

import cv2
import numpy as np
import pytest
import skimage.data
import torch

from demo.video import bundled_portraits
from mask_detection import classifier, faces
from mask_detection.classifier import MaskClassifier, ModelFileError
from mask_detection.drawing import COLORS
from mask_detection.faces import FaceDetectorError
from mask_detection.mask_synthesis import draw_surgical_mask, LIGHT_BLUE, PALE_WHITE
from mask_detection.pipeline import (
    Detection, label_faces, MASK, MaskDetectionPipeline, NO_MASK, PipelineConfig,
    PipelineResult, UNKNOWN)

ASTRONAUT_FACE = (180, 70, 88, 102)  # measured by hand, see test_faces.py

needs_centerface = pytest.mark.skipif(
    faces.centerface_model_path() is None,
    reason=f'CenterFace model file not installed ({faces.CENTERFACE_PIP_COMMAND})')
BACKENDS = ['haar', pytest.param('centerface', marks=needs_centerface)]


@pytest.fixture(scope='module')
def model_file(model_path):
    """Return the shipped model (the conftest's model_path fixture) as a string path."""
    return str(model_path)


@pytest.fixture(scope='module')
def astronaut():
    return cv2.cvtColor(skimage.data.astronaut(), cv2.COLOR_RGB2BGR)


@pytest.fixture(scope='module')
def pipelines(model_file):
    cache = {}

    def get(**settings):
        key = tuple(sorted(settings.items()))
        if key not in cache:
            cache[key] = MaskDetectionPipeline(PipelineConfig(model_path=model_file, **settings))
        return cache[key]
    return get


def iou(a, b):
    w = max(0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    h = max(0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    return w * h / (a[2] * a[3] + b[2] * b[3] - w * h)


def check_detection(d, config):
    assert isinstance(d, Detection) and d.track_id == 0
    assert d.label in (MASK, NO_MASK, UNKNOWN)
    assert 0.0 <= d.mask_probability <= 1.0 and 0.0 <= d.confidence <= 1.0
    assert 0.0 <= d.face_score <= 1.0
    p = (d.mask_probability, 1.0 - d.mask_probability)
    if d.label == MASK:
        assert d.mask_probability >= config.mask_threshold
        assert d.confidence == pytest.approx(p[0], abs=1e-6)
    elif d.label == NO_MASK:
        assert d.mask_probability < config.mask_threshold
        assert d.confidence == pytest.approx(p[1], abs=1e-6)
    else:
        assert d.confidence == pytest.approx(max(p), abs=1e-6)


@pytest.mark.parametrize('backend', BACKENDS)
def test_astronaut_face_found_and_classified(astronaut, pipelines, backend):
    pipeline = pipelines(face_detector=backend)
    result = pipeline.process(astronaut)
    assert isinstance(result, PipelineResult)
    assert set(result.timings) == {'detect', 'classify', 'total'}
    assert all(v >= 0 for v in result.timings.values())
    assert result.timings['total'] >= result.timings['detect'] + result.timings['classify']
    confident = [d for d in result.detections if d.face_score >= 0.5]
    assert len(confident) == 1
    face = confident[0]
    assert iou((face.x, face.y, face.width, face.height), ASTRONAUT_FACE) >= 0.6
    for d in result.detections:
        check_detection(d, pipeline.config)
    # The astronaut wears no mask.
    assert face.label == NO_MASK, face


@needs_centerface
@pytest.mark.parametrize('angle', [30, -25])
def test_rolled_faces_reach_the_classifier_upright(astronaut, pipelines, angle):
    x, y, w, h = ASTRONAUT_FACE
    matrix = cv2.getRotationMatrix2D((x + w / 2, y + h / 2), angle, 1.0)
    turned = cv2.warpAffine(astronaut, matrix, (512, 512), borderMode=cv2.BORDER_REFLECT_101)
    aligned = pipelines(face_detector='centerface')
    plain = pipelines(face_detector='centerface', align_faces=False)
    assert aligned.config.align_faces and not plain.config.align_faces

    def face(image):
        found = aligned.face_detector.detect(image)
        return max(found, key=lambda f: iou((f.x, f.y, f.width, f.height), ASTRONAUT_FACE))
    upright = aligned.classifier.preprocess(astronaut, [face(astronaut)])
    straightened = aligned.classifier.preprocess(turned, [face(turned)])
    left_turned = plain.classifier.preprocess(turned, [face(turned)])
    # (Not equal: the box found on the turned face differs a little, and its points lag.)
    assert np.abs(straightened - upright).mean() < 0.7 * np.abs(left_turned - upright).mean()
    # The astronaut wears no mask, rolled or not.
    assert [d.label for d in aligned.process(turned).detections if d.face_score >= 0.5] == \
        [NO_MASK]


@functools.lru_cache(maxsize=None)
def _portrait_case(index, masked):
    """Return (name, BGR photo, true face box, true label) of a portrait, bare or masked."""
    portrait = bundled_portraits()[index]
    if not masked:
        return portrait.name, portrait.bgr, portrait.landmarks.face_box(), NO_MASK
    style = (LIGHT_BLUE, PALE_WHITE)[index]
    return (portrait.name + ' with a drawn surgical mask',
            draw_surgical_mask(portrait.bgr, portrait.landmarks, style),
            portrait.landmarks.face_box(), MASK)


@pytest.mark.parametrize('backend', BACKENDS)
@pytest.mark.parametrize('index, masked', [(0, False), (0, True), (1, False), (1, True)])
def test_real_masked_faces_are_mask_and_bare_faces_no_mask(request, pipelines, backend, index,
                                                           masked):
    if backend == 'haar' and index == 1 and masked:
        # Haar's frontal-face cascade was trained on bare faces.
        request.applymarker(pytest.mark.xfail(
            reason='Haar does not find the masked Grace Hopper face', strict=True))
    name, bgr, box, truth = _portrait_case(index, masked)
    detections = pipelines(face_detector=backend).process(bgr).detections
    assert detections, f'{backend} found no face in {name}'
    face = max(detections, key=lambda d: iou((d.x, d.y, d.width, d.height), box))
    assert iou((face.x, face.y, face.width, face.height), box) >= 0.5, (name, detections)
    assert face.label == truth, (f'{name}: label {face.label} (mask probability '
                                 f'{face.mask_probability:.3f}), expected {truth}')


class CountingClassifier(MaskClassifier):
    """The real classifier, counting forward passes (to check one batch per frame)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.batches = []

    def predict(self, bgr, boxes):
        self.batches.append(len(boxes))
        return super().predict(bgr, boxes)


@pytest.mark.parametrize('backend', BACKENDS)
def test_all_faces_of_a_frame_in_one_batch(astronaut, model_file, backend):
    face = astronaut[40:200, 150:300]
    collage = np.full((480, 640, 3), 200, np.uint8)
    for row in range(2):
        for col in range(3):
            collage[60 + row * 200:60 + row * 200 + 160,
                    40 + col * 200:40 + col * 200 + 150] = face
    counting = CountingClassifier(model_file)
    pipeline = MaskDetectionPipeline(PipelineConfig(face_detector=backend),
                                     classifier=counting)
    detections = pipeline.process(collage).detections
    assert len([d for d in detections if d.face_score >= 0.5]) == 6
    assert counting.batches == [len(detections)]
    # Six copies of the astronaut, who wears no mask: every one of them is NO_MASK.
    assert [d.label for d in detections if d.face_score >= 0.5] == [NO_MASK] * 6


def test_no_faces_skips_the_classifier(model_file):
    counting = CountingClassifier(model_file)
    pipeline = MaskDetectionPipeline(PipelineConfig(face_detector='haar'), classifier=counting)
    result = pipeline.process(np.full((480, 640, 3), 30, np.uint8))
    assert result.detections == [] and counting.batches == []
    assert set(result.timings) == {'detect', 'classify', 'total'}


def test_label_rule():
    config = PipelineConfig(face_detector='haar', mask_threshold=0.5, unknown_threshold=0.6,
                            min_face_size=24)
    probabilities = np.array([[0.9, 0.1], [0.2, 0.8], [0.55, 0.45], [0.45, 0.55],
                              [0.5, 0.5], [0.95, 0.05], [math.nan, math.nan]])
    sides = [40, 40, 40, 40, 40, 23, 40]
    assert label_faces(probabilities, sides, config) == [
        (MASK, 0.9), (NO_MASK, 0.8), (UNKNOWN, 0.55), (UNKNOWN, 0.55), (UNKNOWN, 0.5),
        (UNKNOWN, 0.95), (UNKNOWN, 0.0)]
    # A lower mask threshold favours MASK; unknown_threshold 0 never gives UNKNOWN by doubt.
    config = PipelineConfig(face_detector='haar', mask_threshold=0.3, unknown_threshold=0.0,
                            min_face_size=0)
    assert label_faces(probabilities[:5], sides[:5], config) == [
        (MASK, 0.9), (NO_MASK, 0.8), (MASK, 0.55), (MASK, 0.45), (MASK, 0.5)]


def test_small_or_doubtful_faces_are_unknown(astronaut, model_file, pipelines):
    base = pipelines(face_detector='haar').process(astronaut).detections
    assert base
    small = pipelines(face_detector='haar', min_face_size=500).process(astronaut).detections
    doubtful = pipelines(face_detector='haar', unknown_threshold=1.0).process(
        astronaut).detections
    for detections in (small, doubtful):
        assert [d.label for d in detections] == [UNKNOWN] * len(base)
        for d, b in zip(detections, base):
            assert d.mask_probability == pytest.approx(b.mask_probability)
            assert d.confidence == pytest.approx(max(b.mask_probability,
                                                     1 - b.mask_probability), abs=1e-6)


@pytest.mark.parametrize('frame, message', [
    (np.zeros((0, 0, 3), np.uint8), 'empty'),
    (np.zeros((480, 640, 3), np.float32), 'dtype uint8'),
    (np.zeros((480, 640, 3), np.float64) + 0.5, 'dtype uint8'),
    (np.zeros((480, 640, 2), np.uint8), 'channels'),
    (None, 'numpy array'),
])
def test_bad_frames_raise_clear_errors(pipelines, frame, message):
    with pytest.raises(FaceDetectorError, match=message):
        pipelines(face_detector='haar').process(frame)


@pytest.mark.parametrize('backend', BACKENDS)
def test_odd_but_valid_frames(astronaut, pipelines, backend):
    pipeline = pipelines(face_detector=backend)
    for frame in (np.zeros((1, 1, 3), np.uint8), np.zeros((1, 1), np.uint8),
                  np.zeros((5, 7, 4), np.uint8)):
        result = pipeline.process(frame)
        for d in result.detections:
            check_detection(d, pipeline.config)
    grey = pipeline.process(cv2.cvtColor(astronaut, cv2.COLOR_BGR2GRAY)).detections
    bgra = pipeline.process(cv2.cvtColor(astronaut, cv2.COLOR_BGR2BGRA)).detections
    for detections in (grey, bgra):
        assert max(iou((d.x, d.y, d.width, d.height), ASTRONAUT_FACE)
                   for d in detections) >= 0.6


@needs_centerface
def test_4k_frame(astronaut, pipelines):
    frame = np.full((2160, 3840, 3), 90, np.uint8)
    frame[1000:1512, 2000:2512] = astronaut
    result = pipelines(face_detector='centerface').process(frame)
    truth = (ASTRONAUT_FACE[0] + 2000, ASTRONAUT_FACE[1] + 1000) + ASTRONAUT_FACE[2:]
    assert max(iou((d.x, d.y, d.width, d.height), truth) for d in result.detections) >= 0.6


def test_annotate_draws_and_times(astronaut, pipelines):
    pipeline = pipelines(face_detector='haar')
    image = astronaut.copy()
    result = pipeline.process(image)
    out = pipeline.annotate(image, result.detections, result.timings)
    assert out is image and result.timings['draw'] >= 0
    color = np.array(COLORS[NO_MASK], np.uint8)  # the astronaut wears no mask: red
    assert np.all(image == color, axis=2).sum() > 100


@pytest.mark.parametrize('settings, message', [
    ({'face_detector': 'yolo'}, 'face_detector must be one of'),
    ({'mask_threshold': 1.5}, r'mask_threshold must be in \[0, 1\]'),
    ({'mask_threshold': -0.1}, r'mask_threshold must be in \[0, 1\]'),
    ({'unknown_threshold': 2}, r'unknown_threshold must be in \[0, 1\]'),
    ({'face_score_threshold': math.nan}, r'face_score_threshold must be in \[0, 1\]'),
    ({'detection_scale': 1.5}, 'detection_scale'),
    ({'detection_scale': -0.5}, 'detection_scale'),
    ({'nms_iou': 0.0}, 'nms_iou'),
    ({'haar_scale_factor': 1.0}, 'haar_scale_factor must be > 1'),
    ({'min_face_size': -1}, 'min_face_size must be >= 0'),
    ({'detection_min_side': -1}, 'detection_min_side must be >= 0'),
    ({'haar_min_size': -5}, 'haar_min_size must be >= 0'),
    ({'num_threads': -1}, 'num_threads must be >= 0'),
    ({'haar_min_size': 50, 'haar_max_size': 40}, 'haar_max_size'),
])
def test_bad_config_raises_clear_errors(settings, message):
    with pytest.raises(ValueError, match=message):
        PipelineConfig(**settings)


def test_config_changed_after_creation_is_validated(model_file):
    config = PipelineConfig(model_path=model_file)
    config.mask_threshold = 3.0
    with pytest.raises(ValueError, match='mask_threshold'):
        MaskDetectionPipeline(config)


def test_detector_settings_reach_the_detector(model_file):
    haar = MaskDetectionPipeline(PipelineConfig(
        face_detector='haar', model_path=model_file, detection_scale=0.5,
        haar_min_neighbors=3, haar_scale_factor=1.2)).face_detector
    assert (haar.settings.scale, haar.settings.min_neighbors, haar.settings.scale_factor) == \
        (0.5, 3, 1.2)
    assert MaskDetectionPipeline(PipelineConfig(
        face_detector='haar', model_path=model_file)).face_detector.settings.scale == 1.0


@needs_centerface
def test_centerface_settings_and_auto(model_file):
    detector = MaskDetectionPipeline(PipelineConfig(
        model_path=model_file, face_score_threshold=0.3, nms_iou=0.4)).face_detector
    assert isinstance(detector, faces.CenterFaceDetector)  # 'auto' with the file installed
    assert (detector.settings.score_threshold, detector.settings.nms_iou) == (0.3, 0.4)
    assert detector.settings.scale == faces.CenterFaceSettings().scale


def test_missing_model_file_is_a_clear_error(tmp_path):
    missing = tmp_path / 'nope.pt'
    with pytest.raises(ModelFileError, match='nope.pt'):
        MaskDetectionPipeline(PipelineConfig(face_detector='haar', model_path=str(missing)))


def test_unavailable_device_is_a_clear_error(model_file):
    if torch.cuda.is_available():
        pytest.skip('CUDA is available here, so asking for it is no error')
    with pytest.raises(ValueError, match='CUDA is not available'):
        MaskDetectionPipeline(PipelineConfig(face_detector='haar', model_path=model_file,
                                             device='cuda'))


def test_shipped_model_is_the_default():
    assert classifier.default_model_path().is_file(), (
        f'the shipped model {classifier.default_model_path()} is missing: it is committed')
    pipeline = MaskDetectionPipeline(PipelineConfig(face_detector='haar'))
    assert pipeline.classifier.model_path == classifier.default_model_path()

"""Tests of the inference engines: ONNX Runtime and OpenCV DNN give CenterFace's same faces."""
import cv2
import numpy as np
import pytest
import skimage.data

from mask_detection import engines, faces
from mask_detection.engines import InferenceEngineError, resolve_engine
from mask_detection.faces import CENTERFACE_PIP_COMMAND, create_face_detector, FaceDetectorError

needs_centerface = pytest.mark.skipif(
    faces.centerface_model_path() is None,
    reason=f'CenterFace model file not installed ({CENTERFACE_PIP_COMMAND})')
needs_onnxruntime = pytest.mark.skipif(
    not engines.onnxruntime_available(),
    reason=f'onnxruntime / onnx not installed ({engines.ONNX_PIP_COMMAND})')


@pytest.fixture(scope='module')
def astronaut():
    return cv2.cvtColor(skimage.data.astronaut(), cv2.COLOR_RGB2BGR)


def real_photos(count=24):
    """Return the astronaut and the first dev-set photos (when ../shared is there), as BGR."""
    photos = [cv2.cvtColor(skimage.data.astronaut(), cv2.COLOR_RGB2BGR)]
    from conftest import SHARED_DATA
    folder = SHARED_DATA / 'facemask-detection-dev' / 'images'
    if folder.is_dir():
        for path in sorted(folder.glob('*.jpg'))[:count]:
            photos.append(cv2.imread(str(path)))
    return photos


def test_engine_names_are_validated():
    with pytest.raises(InferenceEngineError, match="unknown inference engine 'tensorrt'"):
        resolve_engine('tensorrt')
    assert resolve_engine('opencv') == 'opencv'
    expected = 'onnxruntime' if engines.onnxruntime_available() else 'opencv'
    assert resolve_engine('auto') == expected


def test_missing_onnxruntime_falls_back_to_opencv(monkeypatch):
    monkeypatch.setattr(engines, 'onnxruntime_available', lambda: False)
    assert resolve_engine('auto') == 'opencv'
    with pytest.raises(InferenceEngineError, match='onnxruntime or onnx is not installed'):
        resolve_engine('onnxruntime')


@needs_centerface
def test_missing_onnxruntime_gives_an_opencv_centerface(monkeypatch, astronaut):
    monkeypatch.setattr(engines, 'onnxruntime_available', lambda: False)
    detector = create_face_detector('centerface')
    assert detector.engine == 'opencv'
    assert detector.detect(astronaut)
    with pytest.raises(FaceDetectorError, match='pip install onnxruntime'):
        create_face_detector('centerface', engine='onnxruntime')


@needs_centerface
@pytest.mark.parametrize('settings, message', [
    ({'engine': 'cuda'}, "unknown inference engine 'cuda'"),
    ({'num_threads': -1}, 'num_threads must be >= 0'),
])
def test_bad_engine_settings(settings, message):
    with pytest.raises(FaceDetectorError, match=message):
        create_face_detector('centerface', **settings)


@needs_onnxruntime
@needs_centerface
@pytest.mark.parametrize('scale', [1.0, 0.5])
def test_both_engines_give_the_same_faces_on_real_photos(scale):
    onnxruntime = create_face_detector('centerface', engine='onnxruntime', scale=scale)
    opencv = create_face_detector('centerface', engine='opencv', scale=scale)
    assert (onnxruntime.engine, opencv.engine) == ('onnxruntime', 'opencv')
    photos = real_photos()
    total = 0
    for photo in photos:
        ours = onnxruntime.detect(photo)
        theirs = opencv.detect(photo)
        # Outputs differ by ~1e-6: a face whose score sits on the threshold could go either
        # way, so compare the faces clearly above it box by box.
        clear = [f for f in theirs if f.score > 0.36]
        ours_clear = [f for f in ours if f.score > 0.36]
        assert len(ours_clear) == len(clear)
        for a, b in zip(sorted(ours_clear, key=lambda f: (f.x, f.y)),
                        sorted(clear, key=lambda f: (f.x, f.y))):
            assert abs(a.x - b.x) <= 1 and abs(a.y - b.y) <= 1
            assert abs(a.width - b.width) <= 1 and abs(a.height - b.height) <= 1
            assert a.score == pytest.approx(b.score, abs=1e-4)
        total += len(clear)
    assert total >= len(photos)     # real faces were compared, not empty lists


@needs_onnxruntime
@needs_centerface
def test_onnxruntime_keeps_one_session_per_input_size(astronaut):
    detector = create_face_detector('centerface', engine='onnxruntime', scale=1.0,
                                    max_cached_nets=2)
    first = detector.detect(astronaut)
    for size in ((300, 200), (640, 480), (200, 300)):
        detector.detect(cv2.resize(astronaut, size))
    assert detector.detect(astronaut) == first
    assert len(detector._runner._sessions) == 2


@needs_onnxruntime
@needs_centerface
@pytest.mark.parametrize('engine', ['onnxruntime', 'opencv'])
def test_corrupt_model_file_is_a_clear_error_with_each_engine(tmp_path, engine):
    bad = tmp_path / 'centerface.onnx'
    bad.write_bytes(b'\x08\x07' + b'not an onnx file' * 10)
    with pytest.raises(FaceDetectorError, match=f'cannot load the CenterFace model {bad}'):
        create_face_detector('centerface', model_path=str(bad), engine=engine)


@needs_onnxruntime
@needs_centerface
def test_with_input_shape_fixes_the_centerface_input():
    import onnx
    raw = faces.centerface_model_path().read_bytes()
    original = onnx.load_from_string(raw)
    assert len(original.graph.input) > 1        # initializers listed as inputs
    fixed = onnx.load_from_string(engines.with_input_shape(raw, (1, 3, 64, 96)))
    assert len(fixed.graph.input) == 1
    dims = [d.dim_value for d in fixed.graph.input[0].type.tensor_type.shape.dim]
    assert dims == [1, 3, 64, 96]
    session = engines.onnxruntime_session(engines.with_input_shape(raw, (1, 3, 64, 96)), 1)
    heatmap = session.run(['537'], {session.get_inputs()[0].name:
                                    np.zeros((1, 3, 64, 96), np.float32)})[0]
    assert heatmap.shape == (1, 1, 16, 24)
    with pytest.raises(InferenceEngineError, match='not an ONNX model'):
        engines.with_input_shape(b'\x08\x07garbage', (1, 3, 32, 32))


def small_astronaut_scene(side=96):
    """Return a 640x480 frame holding the astronaut photo shrunk to side x side (face ~20 px)."""
    frame = np.full((480, 640, 3), 90, np.uint8)
    photo = cv2.cvtColor(skimage.data.astronaut(), cv2.COLOR_RGB2BGR)
    frame[300:300 + side, 400:400 + side] = cv2.resize(photo, (side, side),
                                                       interpolation=cv2.INTER_AREA)
    return frame


def box_iou(a, b):
    w = max(0, min(a.x + a.width, b.x + b.width) - max(a.x, b.x))
    h = max(0, min(a.y + a.height, b.y + b.height) - max(a.y, b.y))
    return w * h / (a.width * a.height + b.width * b.height - w * h)


@needs_centerface
@pytest.mark.parametrize('engine', [pytest.param('onnxruntime', marks=needs_onnxruntime),
                                    'opencv'])
def test_a_closer_look_finds_the_small_face_a_half_size_pass_misses(engine):
    frame = small_astronaut_scene()
    full = create_face_detector('centerface', scale=1.0, score_threshold=0.5, engine=engine)
    half = create_face_detector('centerface', scale=0.5, score_threshold=0.5, engine=engine)
    closer = create_face_detector('centerface', scale=0.5, score_threshold=0.5, engine=engine,
                                  refine_threshold=0.2)
    [truth] = full.detect(frame)
    assert half.detect(frame) == []      # at half size the face scores under 0.5
    [found] = closer.detect(frame)
    assert box_iou(found, truth) > 0.7 and found.score == pytest.approx(truth.score, abs=0.1)


@needs_centerface
def test_a_closer_look_keeps_what_the_downscaled_pass_found(astronaut):
    plain = create_face_detector('centerface', scale=0.5)
    closer = create_face_detector('centerface', scale=0.5, refine_threshold=0.1)
    for frame in (astronaut, small_astronaut_scene(128), small_astronaut_scene(160)):
        found = closer.detect(frame)
        for face in plain.detect(frame):
            assert max(box_iou(face, other) for other in found) > 0.3
    # At full resolution there is nothing to look closer at.
    full = create_face_detector('centerface', scale=1.0, refine_threshold=0.1)
    assert full.detect(astronaut) == create_face_detector('centerface', scale=1.0).detect(
        astronaut)


@needs_centerface
@pytest.mark.parametrize('settings, message', [
    ({'refine_threshold': 1.5}, 'refine_threshold must be in'),
    ({'refine_window': 100}, 'refine_window must be a multiple of 32'),
    ({'refine_max_looks': -1}, 'refine_max_looks >= 0'),
])
def test_bad_closer_look_settings(settings, message):
    with pytest.raises(FaceDetectorError, match=message):
        create_face_detector('centerface', **settings)

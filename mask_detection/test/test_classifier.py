"""Tests of the mask classifier: preprocessing, batched prediction and safe model files."""
import json
import math
from pathlib import Path

import cv2
import numpy as np
import pytest
import skimage.data
import torch

from mask_detection import classifier, engines
from mask_detection.classifier import MASK, MaskClassifier, MaskNet, ModelFileError, NO_MASK

# The astronaut's face in skimage.data.astronaut() (512 x 512), in pixels.
FACE = (170, 40, 100, 120)


@pytest.fixture(scope='module')
def astronaut_bgr():
    return cv2.cvtColor(skimage.data.astronaut(), cv2.COLOR_RGB2BGR)


def _model(seed=0, input_size=32, conv_channels=(4, 8)):
    torch.manual_seed(seed)
    model = MaskNet(input_size, conv_channels).eval()
    # Non-trivial batch-norm statistics so that eval mode differs from an identity.
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.1, 0.1)
            module.running_var.uniform_(0.5, 1.5)
    return model


@pytest.fixture
def model_file(tmp_path):
    path = tmp_path / 'model.pt'
    classifier.save_model_file(path, _model(), {'metrics': {'val_accuracy': 0.5}})
    return path


def test_class_indices_match_agreed_api():
    assert (MASK, NO_MASK) == (0, 1)
    assert classifier.CLASS_NAMES[MASK] == 'mask'


def test_masknet_has_the_50_35_2_head():
    model = MaskNet(64, (16, 32, 64))
    dense = [m for m in model.head if isinstance(m, torch.nn.Linear)]
    assert [m.out_features for m in dense] == [50, 35, 2]
    assert model(torch.zeros(3, 3, 64, 64)).shape == (3, 2)


def test_masknet_rejects_input_size_not_divisible():
    with pytest.raises(ValueError, match='multiple of 8'):
        MaskNet(60, (8, 8, 8))


def test_preprocess_face_matches_hand_computation(astronaut_bgr):
    x, y, w, h = FACE
    tensor = classifier.preprocess_face(astronaut_bgr, FACE, 48, margin=0.1)
    assert tensor.shape == (3, 48, 48) and tensor.dtype == np.float32
    side = max(w, h) * 1.2
    left, top = int(x + w / 2 - side / 2 + 0.5), int(y + h / 2 - side / 2 + 0.5)
    crop = astronaut_bgr[top:top + round(side), left:left + round(side)]
    rgb = cv2.resize(crop, (48, 48), interpolation=cv2.INTER_AREA)[:, :, ::-1]
    expected = ((rgb.astype(np.float32) / 255.0 - 0.5) / 0.5).transpose(2, 0, 1)
    np.testing.assert_allclose(tensor, expected, atol=1e-6)
    # Channel 0 is red: the astronaut's red flag region is absent in the face, but skin is
    # redder than blue.
    assert tensor[0].mean() > tensor[2].mean()


def test_preprocess_face_pads_outside_image_with_black(astronaut_bgr):
    tensor = classifier.preprocess_face(astronaut_bgr, (0, 0, 40, 40), 32, margin=0.25)
    # The crop starts 10 px above/left of the image: that band is black, i.e. -1 normalised.
    assert np.all(tensor[:, :5, :5] == -1.0)
    assert tensor[:, 20:, 20:].std() > 0.05


def test_preprocess_face_accepts_facebox_like_objects(astronaut_bgr):
    class Box:
        x, y, width, height, score = FACE + (0.9,)

    np.testing.assert_array_equal(classifier.preprocess_face(astronaut_bgr, Box(), 32),
                                  classifier.preprocess_face(astronaut_bgr, FACE, 32))


@pytest.mark.parametrize('box', [(0, 0, 0, 10), (0, 0, 10, -1), (0, 0, math.nan, 10),
                                 (600, 600, 10, 10), (1, 2, 3)])
@pytest.mark.parametrize('roll', [0.0, 20.0])
def test_preprocess_face_rejects_bad_boxes(astronaut_bgr, box, roll):
    with pytest.raises(ValueError, match='box'):
        classifier.preprocess_face(astronaut_bgr, box, 32, roll=roll)


def _turned(image, box, angle):
    x, y, w, h = box
    matrix = cv2.getRotationMatrix2D((x + w / 2, y + h / 2), angle, 1.0)
    return cv2.warpAffine(image, matrix, image.shape[1::-1], borderMode=cv2.BORDER_REFLECT_101)


@pytest.mark.parametrize('angle', [30.0, -20.0])
def test_crop_square_with_roll_undoes_the_turn(astronaut_bgr, angle):
    x, y, w, h = FACE
    side = round(max(w, h) * 1.3)
    left, top = int(x + w / 2 - side / 2 + 0.5), int(y + h / 2 - side / 2 + 0.5)
    upright = astronaut_bgr[top:top + side, left:left + side].astype(np.float32)
    turned = _turned(astronaut_bgr, FACE, -angle)   # a head rolled by ``angle``
    as_is = classifier.crop_square(turned, FACE, 0.15).astype(np.float32)
    straightened = classifier.crop_square(turned, FACE, 0.15, roll=angle).astype(np.float32)
    assert straightened.shape == upright.shape
    # Two resamplings blur a little; a crop left turned is far off.
    assert np.abs(straightened - upright).mean() < 6.0
    assert np.abs(as_is - upright).mean() > 4 * np.abs(straightened - upright).mean()


def test_crop_square_with_roll_is_black_outside_the_image(astronaut_bgr):
    crop = classifier.crop_square(astronaut_bgr, (0, 0, 60, 60), 0.25, roll=30.0)
    assert crop.shape == (90, 90, 3)
    assert np.all(crop[:8, :8] == 0) and crop[45:, 45:].std() > 5


@pytest.mark.parametrize('roll', [math.nan, math.inf])
def test_crop_square_rejects_a_non_finite_roll(astronaut_bgr, roll):
    with pytest.raises(ValueError, match='roll'):
        classifier.crop_square(astronaut_bgr, FACE, 0.15, roll=roll)


def _eye_points(angle, eye_distance=40.0):
    """Return five landmarks whose eyes, ``eye_distance`` px apart, lie at ``angle`` degrees."""
    dx = math.cos(math.radians(angle)) * eye_distance
    dy = math.sin(math.radians(angle)) * eye_distance
    return ((200.0, 90.0), (200.0 + dx, 90.0 + dy), (220, 110), (205, 130), (235, 130))


def _box_with_roll(angle, eye_distance=40.0):
    """Return a FaceBox whose eyes lie on a line at ``angle`` degrees."""
    from mask_detection.faces import FaceBox
    return FaceBox(*FACE, 0.9, _eye_points(angle, eye_distance))


@pytest.mark.parametrize('angle, align, expected', [
    (20.0, True, 20.0), (-12.0, True, -12.0), (2.0, True, 0.0), (20.0, False, 0.0)])
def test_classifier_crops_rolled_faces_upright(model_file, astronaut_bgr, angle, align,
                                               expected):
    model = MaskClassifier(model_file, align_faces=align)
    box = _box_with_roll(angle)
    assert model.roll_of(box) == pytest.approx(expected)
    np.testing.assert_array_equal(
        model.preprocess(astronaut_bgr, [box])[0],
        classifier.preprocess_face(astronaut_bgr, FACE, roll=expected, **model.preprocessing))


@pytest.mark.parametrize('roll, side, expected', [
    (None, 100, 0.0), (2.9, 100, 0.0), (3.1, 100, 3.1), (-44.9, 100, -44.9), (45.5, 100, 0.0),
    (-120.0, 100, 0.0), (20.0, 31, 0.0), (20.0, 32, 20.0)])
def test_upright_angle_turns_plausible_rolls_of_faces_large_enough(roll, side, expected):
    points = None if roll is None else _eye_points(roll)
    assert classifier.upright_angle(points, side) == pytest.approx(expected)


@pytest.mark.parametrize('eye_distance, expected', [(4.0, 0.0), (19.9, 0.0), (20.1, 20.0),
                                                    (40.0, 20.0)])
def test_faces_turned_away_are_not_turned_upright(eye_distance, expected):
    # A frontal face of 100 px has its eyes about 40 px apart; turned away, the eye line's angle
    # is no longer the head's roll.
    assert classifier.upright_angle(_eye_points(20.0, eye_distance), 100) == pytest.approx(
        expected)


def test_small_faces_and_implausible_rolls_are_cropped_as_they_are(model_file):
    from mask_detection.faces import FaceBox
    model = MaskClassifier(model_file)
    upright = _box_with_roll(20.0)
    assert model.roll_of(upright) == pytest.approx(20.0)
    small = FaceBox(upright.x, upright.y, 30, 30, 0.9, upright.landmarks)
    assert model.roll_of(small) == 0.0
    assert model.roll_of(_box_with_roll(70.0)) == 0.0
    assert model.roll_of(_box_with_roll(20.0, eye_distance=3.0)) == 0.0


def test_boxes_without_landmarks_are_cropped_as_they_are(model_file, astronaut_bgr):
    from mask_detection.faces import FaceBox
    model = MaskClassifier(model_file)
    assert model.roll_of(FACE) == 0.0
    assert model.roll_of(FaceBox(*FACE, 0.9)) == 0.0


@pytest.mark.parametrize('image, message', [
    (np.zeros((10, 10, 3), np.float32), 'uint8'),
    (np.zeros((0, 10, 3), np.uint8), 'empty'),
    (np.zeros((10, 10, 5), np.uint8), 'shape'),
    ([[1, 2]], 'numpy'),
])
def test_predict_rejects_bad_images(model_file, image, message):
    with pytest.raises(ValueError, match=message):
        MaskClassifier(model_file).predict(image, [(0, 0, 5, 5)])


def test_predict_grey_and_bgra_images_like_bgr(model_file, astronaut_bgr):
    model = MaskClassifier(model_file)
    grey = cv2.cvtColor(astronaut_bgr, cv2.COLOR_BGR2GRAY)
    np.testing.assert_allclose(model.predict(grey, [FACE]),
                               model.predict(cv2.cvtColor(grey, cv2.COLOR_GRAY2BGR), [FACE]))
    bgra = cv2.cvtColor(astronaut_bgr, cv2.COLOR_BGR2BGRA)
    np.testing.assert_allclose(model.predict(bgra, [FACE]), model.predict(astronaut_bgr, [FACE]))


def test_predict_is_one_batch_equal_to_single_predictions(model_file, astronaut_bgr):
    model = MaskClassifier(model_file)
    boxes = [FACE, (300, 200, 60, 60), (0, 0, 30, 30), (480, 480, 40, 40)]
    probabilities = model.predict(astronaut_bgr, boxes)
    assert probabilities.shape == (4, 2) and probabilities.dtype == np.float32
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-6)
    singles = np.concatenate([model.predict(astronaut_bgr, [b]) for b in boxes])
    np.testing.assert_allclose(probabilities, singles, atol=1e-5)
    # Different crops give different answers (the network is not constant).
    assert np.ptp(probabilities[:, MASK]) > 1e-4


def test_predict_without_boxes_returns_empty(model_file, astronaut_bgr):
    assert MaskClassifier(model_file).predict(astronaut_bgr, []).shape == (0, 2)


def test_predict_matches_network_on_preprocess_face(model_file, astronaut_bgr):
    # The expected input is built by hand from the documented preprocessing, for the saved
    # network itself: FACE (170, 40, 100, 120) plus the default 0.15 margin is the square of
    # side 120 * 1.3 = 156 centred on (220, 100), i.e. rows 22..177 and columns 142..297, all
    # inside the photo; shrunk to 32 x 32 (area), RGB, scaled to [0, 1], then (x - 0.5) / 0.5.
    crop = astronaut_bgr[22:178, 142:298]
    assert crop.shape == (156, 156, 3)
    rgb = cv2.resize(crop, (32, 32), interpolation=cv2.INTER_AREA)[:, :, ::-1] / 255.0
    tensor = torch.from_numpy(((rgb - 0.5) / 0.5).transpose(2, 0, 1).astype(np.float32))
    with torch.inference_mode():
        expected = torch.softmax(_model()(tensor[None]), 1).numpy()
    np.testing.assert_allclose(MaskClassifier(model_file).predict(astronaut_bgr, [FACE]),
                               expected, atol=1e-6)


def test_round_trip_keeps_weights_and_metadata(model_file):
    original = _model()
    loaded, metadata = classifier.load_model_file(model_file)
    for key, value in original.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[key], value)
    assert metadata['architecture'] == classifier.ARCHITECTURE_ID
    assert metadata['input_size'] == 32 and metadata['conv_channels'] == [4, 8]
    assert metadata['classes'] == ['mask', 'no_mask']
    assert metadata['metrics'] == {'val_accuracy': 0.5}
    assert metadata['margin'] == classifier.DEFAULT_MARGIN
    assert not loaded.training
    # The file is plain data: the strict torch loader reads it.
    payload = torch.load(model_file, weights_only=True)
    assert json.loads(payload['metadata'])['input_size'] == 32


def test_metadata_sets_preprocessing(tmp_path, astronaut_bgr):
    path = tmp_path / 'm.pt'
    classifier.save_model_file(path, _model(), {'margin': 0.3, 'mean': [0.4, 0.5, 0.6]})
    model = MaskClassifier(path)
    assert model.preprocessing['margin'] == 0.3
    expected = classifier.preprocess_face(astronaut_bgr, FACE, 32, margin=0.3,
                                          mean=(0.4, 0.5, 0.6))
    np.testing.assert_array_equal(model.preprocess(astronaut_bgr, [FACE])[0], expected)


def _assert_model_file_error(path, reason):
    with pytest.raises(ModelFileError, match=reason) as info:
        classifier.load_model_file(path)
    assert str(path) in str(info.value)
    with pytest.raises(ModelFileError):
        MaskClassifier(path)
    return info.value


def test_missing_file(tmp_path):
    _assert_model_file_error(tmp_path / 'absent.pt', 'file not found')


def test_empty_file(tmp_path):
    path = tmp_path / 'empty.pt'
    path.write_bytes(b'')
    _assert_model_file_error(path, 'empty')


def test_truncated_file(model_file):
    data = model_file.read_bytes()
    model_file.write_bytes(data[:len(data) // 2])
    _assert_model_file_error(model_file, 'truncated or corrupt')


def test_text_file(tmp_path):
    path = tmp_path / 'notes.pt'
    path.write_text('not a model\n')
    _assert_model_file_error(path, 'truncated or corrupt')


def test_wrong_architecture(tmp_path):
    path = tmp_path / 'other.pt'
    classifier.save_model_file(path, _model(), {})
    payload = torch.load(path, weights_only=True)
    metadata = json.loads(payload['metadata'])
    metadata['architecture'] = 'resnet18'
    payload['metadata'] = json.dumps(metadata)
    torch.save(payload, path)
    _assert_model_file_error(path, "architecture 'resnet18'")


def test_plain_state_dict_is_not_a_model_file(tmp_path):
    path = tmp_path / 'state.pt'
    torch.save(_model().state_dict(), path)
    _assert_model_file_error(path, 'format')


def test_wrong_shape(tmp_path):
    path = tmp_path / 'shape.pt'
    classifier.save_model_file(path, _model(conv_channels=(4, 8)), {})
    payload = torch.load(path, weights_only=True)
    # Metadata says 6 channels in the second block; the weights have 8.
    metadata = json.loads(payload['metadata'])
    metadata['conv_channels'] = [4, 6]
    payload['metadata'] = json.dumps(metadata)
    torch.save(payload, path)
    _assert_model_file_error(path, 'wrong shape')


def test_nan_weights(tmp_path):
    path = tmp_path / 'nan.pt'
    model = _model()
    with torch.no_grad():
        model.head[-1].bias.fill_(float('nan'))
    classifier.save_model_file(path, model, {})
    _assert_model_file_error(path, 'NaN')


def test_nan_producing_network(tmp_path):
    # Finite weights whose outputs overflow to inf/NaN.
    path = tmp_path / 'overflow.pt'
    model = _model()
    with torch.no_grad():
        for layer in model.head:
            if isinstance(layer, torch.nn.Linear):
                layer.weight.fill_(1e30)
    classifier.save_model_file(path, model, {})
    _assert_model_file_error(path, 'NaN or infinite outputs')


class _Payload:
    """Pickles to a call that creates a marker file when unpickled."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


def test_pickle_payload_is_refused_and_never_executed(tmp_path):
    marker = tmp_path / 'payload_ran'
    path = tmp_path / 'evil.pt'
    payload = {'format': classifier.FILE_FORMAT, 'format_version': 1,
               'metadata': json.dumps(_model().architecture()),
               'state_dict': _model().state_dict(), 'extra': _Payload(marker)}
    torch.save(payload, path)
    error = _assert_model_file_error(path, 'unsafe payload')
    assert 'refused' in error.reason
    assert not marker.exists()
    # The payload is real: an unsafe loader would have run it.
    torch.load(path, weights_only=False)
    assert marker.exists()


def test_cuda_device_when_unavailable_is_a_clear_error(model_file):
    if torch.cuda.is_available():
        assert MaskClassifier(model_file, device='cuda').device.type == 'cuda'
        return
    with pytest.raises(ValueError, match='CUDA is not available'):
        MaskClassifier(model_file, device='cuda')


def test_unknown_device(model_file):
    with pytest.raises(ValueError, match='unknown device'):
        MaskClassifier(model_file, device='tpu')


def test_num_threads(model_file):
    before = torch.get_num_threads()
    try:
        MaskClassifier(model_file, num_threads=1)
        assert torch.get_num_threads() == 1
        torch.set_num_threads(2)
        MaskClassifier(model_file, num_threads=0)
        assert torch.get_num_threads() == 2
        with pytest.raises(ValueError, match='num_threads'):
            MaskClassifier(model_file, num_threads=-1)
    finally:
        torch.set_num_threads(before)


def test_default_model_path():
    path = classifier.default_model_path()
    assert path.name == 'mask_classifier.pt' and path.parent.name == 'models'


def test_shipped_model_loads_and_classifies(astronaut_bgr):
    path = classifier.default_model_path()
    assert path.is_file(), f'the shipped model {path} is missing: it is committed'
    model = MaskClassifier(path)
    assert model.metadata['architecture'] == classifier.ARCHITECTURE_ID
    probabilities = model.predict(astronaut_bgr, [FACE])
    # The astronaut wears no mask.
    assert probabilities[0, NO_MASK] > 0.5


needs_onnxruntime = pytest.mark.skipif(
    not engines.onnxruntime_available(),
    reason='onnxruntime / onnx not installed (optional: the classifier then runs in torch)')


def _real_faces(image):
    """Return face-sized boxes at several places of a real photo (the face, around it)."""
    return [FACE, (150, 30, 140, 150), (200, 90, 50, 60), (10, 300, 80, 80), (400, 400, 60, 70),
            (-20, -10, 90, 90), (460, 200, 80, 100), (250, 250, 40, 40)]


@needs_onnxruntime
@pytest.mark.parametrize('count', [1, 3, 8])
def test_onnxruntime_and_torch_give_the_same_probabilities(model_file, astronaut_bgr, count):
    boxes = _real_faces(astronaut_bgr)[:count]
    onnx = MaskClassifier(model_file, engine='onnxruntime')
    eager = MaskClassifier(model_file, engine='opencv')
    assert (onnx.engine, eager.engine) == ('onnxruntime', 'torch')
    ours, theirs = onnx.predict(astronaut_bgr, boxes), eager.predict(astronaut_bgr, boxes)
    assert ours.shape == (count, 2) and ours.dtype == np.float32
    np.testing.assert_allclose(ours, theirs, atol=1e-5)
    assert np.ptp(theirs[:, MASK]) > 1e-3 or count == 1   # different faces, different outputs


@needs_onnxruntime
def test_onnxruntime_follows_the_model_file(tmp_path, astronaut_bgr):
    # The ONNX network is exported from the loaded .pt, so a retrained file (here: other
    # weights and another conv front) can never run with stale weights.
    boxes = _real_faces(astronaut_bgr)
    outputs = []
    for seed, channels in ((1, (4, 8)), (2, (8, 8, 16))):
        path = tmp_path / f'model{seed}.pt'
        classifier.save_model_file(path, _model(seed, 32, channels))
        onnx = MaskClassifier(path, engine='onnxruntime')
        eager = MaskClassifier(path, engine='opencv')
        outputs.append(onnx.predict(astronaut_bgr, boxes))
        np.testing.assert_allclose(outputs[-1], eager.predict(astronaut_bgr, boxes), atol=1e-5)
    assert np.abs(outputs[0] - outputs[1]).max() > 1e-3


def test_classifier_engine_choice(model_file, monkeypatch):
    assert MaskClassifier(model_file, engine='opencv').engine == 'torch'
    with pytest.raises(ValueError, match="unknown inference engine 'tflite'"):
        MaskClassifier(model_file, engine='tflite')
    monkeypatch.setattr(engines, 'onnxruntime_available', lambda: False)
    assert MaskClassifier(model_file, engine='auto').engine == 'torch'
    with pytest.raises(ValueError, match='onnxruntime or onnx is not installed'):
        MaskClassifier(model_file, engine='onnxruntime')


@needs_onnxruntime
def test_corrupt_model_file_is_refused_before_any_export(tmp_path):
    bad = tmp_path / 'model.pt'
    bad.write_bytes(b'PK\x03\x04 truncated zip')
    with pytest.raises(ModelFileError, match=f'^mask classifier model file {bad}: ') as error:
        MaskClassifier(bad, engine='onnxruntime')
    assert '\n' not in str(error.value)


def _luminance_std(tensor):
    # Network input back to [0, 1] RGB, then Rec. 601 luma: the contrast the network sees.
    rgb = tensor * 0.5 + 0.5
    return float((0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2]).std())


def test_clahe_luma_restores_the_contrast_of_a_dim_face(astronaut_bgr):
    # The astronaut at 15 % exposure: a dim webcam face. Without normalisation the network sees
    # about 15 % of the bright face's contrast (the scaling is linear); with CLAHE on luminance
    # the dim face's contrast is back to at least half of the bright, unnormalised face's.
    dim = (astronaut_bgr.astype(np.float32) * 0.15).round().astype(np.uint8)
    bright_plain = _luminance_std(classifier.preprocess_face(astronaut_bgr, FACE, 48))
    dim_plain = _luminance_std(classifier.preprocess_face(dim, FACE, 48))
    dim_clahe = _luminance_std(classifier.preprocess_face(dim, FACE, 48,
                                                          photometric='clahe_luma'))
    assert 0.12 < dim_plain / bright_plain < 0.18
    assert dim_clahe > 0.5 * bright_plain
    assert dim_clahe > 3 * dim_plain


def test_clahe_luma_leaves_a_plain_dark_patch_plain():
    # A uniform black-mask-like patch must not gain texture: CLAHE of a constant is a constant.
    patch = np.full((120, 120, 3), 25, np.uint8)
    tensor = classifier.preprocess_face(patch, (20, 20, 80, 80), 48, photometric='clahe_luma')
    assert float(tensor.std()) == 0.0


def test_clahe_luma_keeps_colour_order(astronaut_bgr):
    # Luminance only: skin stays redder than blue.
    tensor = classifier.preprocess_face(astronaut_bgr, FACE, 48, photometric='clahe_luma')
    assert tensor[0].mean() > tensor[2].mean()


def test_preprocess_face_rejects_unknown_photometric(astronaut_bgr):
    with pytest.raises(ValueError, match='photometric'):
        classifier.preprocess_face(astronaut_bgr, FACE, 48, photometric='equalise')


def test_file_without_photometric_entry_preprocesses_as_before(tmp_path, astronaut_bgr):
    # Model files written before the entry existed (the shipped one included) were trained on
    # unnormalised crops: they must get exactly the old input, i.e. the hand computation above.
    path = tmp_path / 'old.pt'
    classifier.save_model_file(path, _model())
    payload = torch.load(path, weights_only=True)
    metadata = json.loads(payload['metadata'])
    del metadata['photometric']
    payload['metadata'] = json.dumps(metadata)
    torch.save(payload, path)
    model = MaskClassifier(path)
    assert model.preprocessing['photometric'] == 'none'
    x, y, w, h = FACE
    side = max(w, h) * (1 + 2 * classifier.DEFAULT_MARGIN)
    left, top = int(x + w / 2 - side / 2 + 0.5), int(y + h / 2 - side / 2 + 0.5)
    crop = astronaut_bgr[top:top + round(side), left:left + round(side)]
    rgb = cv2.resize(crop, (32, 32), interpolation=cv2.INTER_AREA)[:, :, ::-1]
    expected = ((rgb.astype(np.float32) / 255.0 - 0.5) / 0.5).transpose(2, 0, 1)
    np.testing.assert_allclose(model.preprocess(astronaut_bgr, [FACE])[0], expected, atol=1e-6)


def test_shipped_model_normalises_luminance_and_older_files_do_not(tmp_path):
    # The shipped model (clahe2, issue 14) was trained on clahe_luma crops: it must get them.
    model = MaskClassifier(classifier.default_model_path())
    assert model.metadata['photometric'] == 'clahe_luma'
    assert model.preprocessing['photometric'] == 'clahe_luma'
    # A file without the entry (every model before clahe2) keeps the plain preprocessing.
    path = tmp_path / 'old.pt'
    classifier.save_model_file(path, _model(), {})
    assert MaskClassifier(path).preprocessing['photometric'] == 'none'


def test_metadata_photometric_is_applied(tmp_path, astronaut_bgr):
    path = tmp_path / 'clahe.pt'
    classifier.save_model_file(path, _model(), {'photometric': 'clahe_luma'})
    model = MaskClassifier(path)
    expected = classifier.preprocess_face(astronaut_bgr, FACE, 32, photometric='clahe_luma')
    np.testing.assert_array_equal(model.preprocess(astronaut_bgr, [FACE])[0], expected)
    assert not np.array_equal(expected, classifier.preprocess_face(astronaut_bgr, FACE, 32))


def test_unknown_photometric_in_file_is_refused(tmp_path):
    path = tmp_path / 'bad.pt'
    classifier.save_model_file(path, _model(), {'photometric': 'equalise'})
    _assert_model_file_error(path, 'photometric')

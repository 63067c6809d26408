"""Tests of the webcam-condition augmentation on a real photo (the astronaut)."""
from astronaut_data import astronaut_bgr, FACE
import cv2
import numpy as np
import pytest

from training import conditions, data as data_lib


@pytest.fixture(scope='module')
def photo():
    return astronaut_bgr()


def _grey(image):
    return cv2.cvtColor(image, cv2.COLOR_BGR2GRAY).astype(np.float64)


def _face(image):
    x, y, w, h = FACE
    return _grey(image)[y:y + h, x:x + w]


def _sharpness(image):
    return float(cv2.Laplacian(_grey(image), cv2.CV_64F).var())


def test_backlight_darkens_the_face_and_brightens_the_background(photo):
    out = conditions.backlight(photo, FACE, np.random.default_rng(0), face_gain=0.4)
    assert out.shape == photo.shape and out.dtype == np.uint8
    assert _face(out).mean() < 0.6 * _face(photo).mean()
    corner = (slice(0, 40), slice(0, 40))
    assert _grey(out)[corner].mean() > _grey(photo)[corner].mean() + 30


def test_low_light_is_dark_and_noisy(photo):
    out = conditions.low_light(photo, FACE, np.random.default_rng(0), gain=0.25, noise=8.0)
    assert _grey(out).mean() < 0.35 * _grey(photo).mean()
    # The noise: a flat dark patch of the scaled photo becomes grainy.
    scaled = _grey(photo) * 0.25
    assert np.abs(_grey(out) - scaled).std() > 2.0


def test_small_upscaled_loses_detail_but_keeps_the_size(photo):
    out = conditions.small_upscaled(photo, FACE, np.random.default_rng(0), face_px=20)
    assert out.shape == photo.shape
    assert _sharpness(out) < 0.2 * _sharpness(photo)


def test_colour_cast_changes_channel_balance(photo):
    out = conditions.colour_cast(photo, FACE, np.random.default_rng(0), gains=(1.3, 1.0, 0.7))
    before = photo.reshape(-1, 3).mean(axis=0)
    after = out.reshape(-1, 3).mean(axis=0)
    assert after[0] / after[2] > 1.5 * before[0] / before[2]


def test_strong_colour_cast_reaches_a_blue_webcams_balance(photo):
    # hiluf_webcam's unmasked faces: blue / red about 1.5; daylight skin about 0.65.
    ratios = []
    for seed in range(200):
        out = conditions.strong_colour_cast(photo, FACE, np.random.default_rng(seed))
        mean = out.reshape(-1, 3).astype(float).mean(axis=0)
        ratios.append(mean[0] / mean[2])
    before = photo.reshape(-1, 3).astype(float).mean(axis=0)
    ratio_before = before[0] / before[2]
    # colour_cast's +-30 % gains change the ratio by 1.3 / 0.7 = 1.86x at most.
    assert max(ratios) > 2.1 * ratio_before and min(ratios) < ratio_before / 2.1


def test_motion_blur_smears_along_one_direction(photo):
    out = conditions.motion_blur(photo, FACE, np.random.default_rng(0), length=11, angle=0)
    grey_in, grey_out = _grey(photo), _grey(out)
    # Horizontal blur: horizontal gradients shrink much more than vertical ones.
    dx = np.abs(np.diff(grey_out, axis=1)).mean() / np.abs(np.diff(grey_in, axis=1)).mean()
    dy = np.abs(np.diff(grey_out, axis=0)).mean() / np.abs(np.diff(grey_in, axis=0)).mean()
    assert dx < 0.6 and dy > dx + 0.15


def test_codec_artefacts_are_blocky(photo):
    out = conditions.codec(photo, FACE, np.random.default_rng(0), quality=10)
    grey = _grey(out)
    # 8x8 block edges: differences across block borders exceed those inside blocks.
    steps = np.abs(np.diff(grey, axis=1))
    at_border = steps[:, 7::8].mean()
    inside = np.delete(steps, np.s_[7::8], axis=1).mean()
    assert at_border > 1.2 * inside


def test_every_evaluation_condition_and_random_mix_keep_shape(photo):
    rng = np.random.default_rng(3)
    for name, apply in conditions.CONDITIONS.items():
        out = apply(photo, FACE, rng)
        assert out.shape == photo.shape and out.dtype == np.uint8, name
        assert not np.array_equal(out, photo), name
    for _ in range(10):
        out = conditions.random_conditions(photo, FACE, rng)
        assert out.shape == photo.shape and out.dtype == np.uint8


def _no_augmentation():
    """Return an AugmentConfig that changes nothing (each test switches on its one step)."""
    return data_lib.AugmentConfig(colour_p=0, grey_p=0, blur_p=0, jpeg_p=0, noise_p=0,
                                  small_face_p=0, rotation_p=0, flip=0, scale_jitter=0,
                                  shift_jitter=0, aspect_jitter=0)


def test_training_augmentation_applies_webcam_conditions(photo):
    region = data_lib.cut_region(photo, FACE, 96)
    region.label = 1
    plain = _no_augmentation()
    webcam = data_lib.AugmentConfig(**{**plain.__dict__, 'webcam_p': 1.0})
    base, _ = data_lib.augment_region(region, np.random.default_rng(0), plain)
    assert np.array_equal(base, region.image)
    changed = [data_lib.augment_region(region, np.random.default_rng(seed), webcam)[0]
               for seed in range(5)]
    assert all(not np.array_equal(image, region.image) for image in changed)


def test_training_augmentation_shuffles_colour_channels(photo):
    region = data_lib.cut_region(photo, FACE, 96)
    region.label = 0
    plain = _no_augmentation()
    shuffled = data_lib.AugmentConfig(**{**plain.__dict__, 'channel_shuffle_p': 1.0})
    channels = [region.image[..., c] for c in range(3)]
    orders = set()
    for seed in range(12):
        image, _ = data_lib.augment_region(region, np.random.default_rng(seed), shuffled)
        # Every channel of the result is one of the original's, and never all in place.
        order = tuple(next(c for c in range(3) if np.array_equal(image[..., k], channels[c]))
                      for k in range(3))
        assert sorted(order) == [0, 1, 2] and order != (0, 1, 2)
        orders.add(order)
    assert len(orders) >= 3


def test_darker_skin_darkens_the_face_only_and_keeps_its_detail(photo):
    out = conditions.darker_skin(photo, FACE, np.random.default_rng(0), gamma=2.2)
    assert out.shape == photo.shape and out.dtype == np.uint8
    assert _face(out).mean() < 0.7 * _face(photo).mean()
    corner = (slice(0, 40), slice(0, 40))
    assert np.array_equal(_grey(out)[corner], _grey(photo)[corner])
    # A gamma keeps the face's structure: its grey levels still rank as before (lips, eyes).
    face_in, face_out = _face(photo).ravel(), _face(out).ravel()
    assert np.corrcoef(face_in, face_out)[0, 1] > 0.9
    assert face_out.std() > 0.25 * face_in.std()


def test_training_augmentation_applies_darker_skin(photo):
    region = data_lib.cut_region(photo, FACE, 96)
    region.label = 0
    plain = _no_augmentation()
    darker = data_lib.AugmentConfig(**{**plain.__dict__, 'darker_skin_p': 1.0})
    x, y, w, h = (int(round(v)) for v in region.box)
    face = (slice(y, y + h), slice(x, x + w))
    for seed in range(3):
        image, _ = data_lib.augment_region(region, np.random.default_rng(seed), darker)
        assert _grey(image)[face].mean() < 0.8 * _grey(region.image)[face].mean()

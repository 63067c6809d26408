"""Tests of the annotation: colours, tag placement, and never drawing outside the image."""
import cv2
import numpy as np
import pytest
import skimage.data

from mask_detection import drawing
from mask_detection.drawing import COLORS, draw_detections, drawing_sizes, label_text
from mask_detection.pipeline import Detection, MASK, NO_MASK, UNKNOWN

GREEN, RED, YELLOW = (0, 200, 0), (0, 0, 255), (0, 215, 255)


def detection(x, y, w, h, label=MASK, confidence=0.9, track_id=0):
    return Detection(x, y, w, h, label, confidence if label == MASK else 1 - confidence,
                     confidence, 0.8, track_id)


def count_color(image, color):
    return int(np.all(image == np.array(color, np.uint8), axis=2).sum())


def test_label_constants_match_the_pipeline():
    assert (drawing._MASK, drawing._NO_MASK, drawing._UNKNOWN) == (MASK, NO_MASK, UNKNOWN)
    assert COLORS[MASK] == GREEN and COLORS[NO_MASK] == RED and COLORS[UNKNOWN] == YELLOW


@pytest.mark.parametrize('label, color', [(MASK, GREEN), (NO_MASK, RED), (UNKNOWN, YELLOW)])
def test_box_has_the_label_colour(label, color):
    image = np.full((480, 640, 3), 128, np.uint8)
    out = draw_detections(image, [detection(200, 150, 100, 120, label)])
    assert out is image  # drawn in place
    # The box's left edge (below the tag) is the label's colour, inside it is untouched.
    assert tuple(image[200, 200]) == color
    assert tuple(image[210, 250]) == (128, 128, 128)
    assert count_color(image, color) > 400
    others = [c for c in (GREEN, RED, YELLOW) if c != color]
    assert all(count_color(image, c) == 0 for c in others)


def test_tag_text_and_readable_sizes():
    assert label_text(detection(0, 0, 5, 5, MASK, 0.934)) == 'mask 93%'
    assert label_text(detection(0, 0, 5, 5, NO_MASK, 0.5, track_id=4)) == '#4 no mask 50%'
    assert label_text(detection(0, 0, 5, 5, UNKNOWN, 0.55)) == '? 55%'
    for height, width, min_text_h in [(480, 640, 10), (1080, 1920, 22)]:
        box_t, font_scale, text_t = drawing_sizes(height, width)
        (_, text_h), _ = cv2.getTextSize('no mask 93%', drawing.FONT, font_scale, text_t)
        assert text_h >= min_text_h, (height, text_h)
        assert box_t >= (2 if height >= 480 else 1)
    # Thicker lines for the larger image.
    assert drawing_sizes(1080, 1920)[0] > drawing_sizes(480, 640)[0]


def test_tag_above_the_box_or_inside_when_at_the_top():
    image = np.full((480, 640, 3), 128, np.uint8)
    draw_detections(image, [detection(300, 200, 80, 80, NO_MASK)])
    rows = np.nonzero(np.all(image == RED, axis=2).any(axis=1))[0]
    assert rows.min() < 200  # the tag is above the box
    image[:] = 128
    draw_detections(image, [detection(300, 0, 80, 80, NO_MASK)])
    rows = np.nonzero(np.all(image == RED, axis=2).any(axis=1))[0]
    assert rows.min() == 0 and rows.max() <= 80  # inside the box's area, not above the image
    # The tag's filled background covers a band at the top of the box.
    assert count_color(image[:10, 300:380], RED) > 0.3 * 10 * 80


@pytest.mark.parametrize('box', [
    (-50, -40, 120, 100),     # off the top-left corner
    (600, 440, 200, 200),     # off the bottom-right corner
    (-10, 200, 700, 50),      # wider than the image
    (630, 10, 50, 50),        # tag would stick out on the right
    (1000, 1000, 10, 10),     # entirely outside: nothing drawn
    (5, 5, 0, 0),             # empty box
])
def test_never_draws_outside_the_image(box):
    # Draw on a view in the middle of a larger canvas: the frame around it must stay intact.
    canvas = np.full((480 + 100, 640 + 100, 3), 77, np.uint8)
    view = canvas[50:-50, 50:-50]
    draw_detections(view, [detection(*box, label=NO_MASK)])
    frame = canvas.copy()
    frame[50:-50, 50:-50] = 77
    assert np.all(frame == 77)
    if box[0] >= 640 or box[2] == 0:
        assert np.all(view == 77)
    else:
        assert count_color(view, RED) > 0


@pytest.mark.parametrize('shape', [(1, 1, 3), (3, 5, 3), (12, 12, 3), (20, 200, 3)])
def test_tiny_images(shape):
    image = np.zeros(shape, np.uint8)
    draw_detections(image, [detection(0, 0, shape[1], shape[0], UNKNOWN),
                            detection(-3, -3, 100, 100, MASK)])
    assert count_color(image, YELLOW) + count_color(image, GREEN) > 0


def test_draws_in_place_on_padded_and_strided_views():
    buffer = np.zeros((100, 130, 3), np.uint8)
    padded = buffer[:, :120]  # rows padded, as a view of a message buffer
    draw_detections(padded, [detection(10, 30, 50, 50, MASK)])
    assert count_color(buffer[:, :120], GREEN) > 100 and np.all(buffer[:, 120:] == 0)
    strided = np.zeros((100, 240, 3), np.uint8)
    draw_detections(strided[:, ::2], [detection(10, 30, 50, 50, NO_MASK)])
    assert count_color(strided[:, ::2], RED) > 100 and np.all(strided[:, 1::2] == 0)


def test_real_photo_at_two_resolutions():
    photo = cv2.cvtColor(skimage.data.astronaut(), cv2.COLOR_RGB2BGR)
    for size in [(640, 480), (1920, 1080)]:
        image = cv2.resize(photo, size)
        scale_x, scale_y = size[0] / 512, size[1] / 512
        face = detection(int(180 * scale_x), int(70 * scale_y), int(88 * scale_x),
                         int(102 * scale_y), MASK)
        before = image.copy()
        draw_detections(image, [face])
        changed = np.any(image != before, axis=2)
        assert changed.any() and count_color(image, GREEN) > 200


@pytest.mark.parametrize('image, message', [
    (np.zeros((10, 10), np.uint8), 'HxWx3 uint8'),
    (np.zeros((10, 10, 4), np.uint8), 'HxWx3 uint8'),
    (np.zeros((10, 10, 3), np.float32), 'HxWx3 uint8'),
    (None, 'HxWx3 uint8'),
])
def test_bad_images_raise_clear_errors(image, message):
    with pytest.raises(ValueError, match=message):
        draw_detections(image, [detection(1, 1, 5, 5)])


def test_read_only_image_is_a_clear_error():
    image = np.frombuffer(bytes(10 * 10 * 3), np.uint8).reshape(10, 10, 3)
    with pytest.raises(ValueError, match='read-only'):
        draw_detections(image, [detection(1, 1, 5, 5)])


def test_no_detections_changes_nothing():
    image = np.full((48, 64, 3), 9, np.uint8)
    assert draw_detections(image, []) is image and np.all(image == 9)

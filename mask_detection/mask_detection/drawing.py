"""Annotation: a coloured box and a 'label probability' tag per detection, drawn in place.

Green = mask, red = no mask, yellow = unknown (BGR).  Line widths and font size grow with the
image so the tags stay readable from 640x480 to 1920x1080; everything is clipped to the image.
"""
import cv2
import numpy as np

# Label values as in pipeline.py / MaskDetection.msg (not imported: pipeline imports this).
_MASK, _NO_MASK, _UNKNOWN = 0, 1, 2

COLORS = {
    _MASK: (0, 200, 0),        # green
    _NO_MASK: (0, 0, 255),     # red
    _UNKNOWN: (0, 215, 255),   # yellow
}
TEXT_COLORS = {_MASK: (0, 0, 0), _NO_MASK: (255, 255, 255), _UNKNOWN: (0, 0, 0)}
LABEL_TEXT = {_MASK: 'mask', _NO_MASK: 'no mask', _UNKNOWN: '?'}
FONT = cv2.FONT_HERSHEY_SIMPLEX
# Image short side at which the base sizes below apply (480 = VGA).
_REFERENCE_SIDE = 480.0


def drawing_sizes(height: int, width: int):
    """Return (box thickness, font scale, text thickness) for an image of that size."""
    factor = max(min(height, width) / _REFERENCE_SIDE, 0.25)
    return max(1, round(2 * factor)), 0.5 * factor, max(1, round(factor))


def label_text(detection) -> str:
    """Return the tag of a detection, e.g. 'no mask 93%' or '#4 mask 88%'."""
    text = f'{LABEL_TEXT.get(detection.label, "?")} {100 * detection.confidence:.0f}%'
    track_id = getattr(detection, 'track_id', 0)
    return f'#{track_id} {text}' if track_id else text


def _clipped_box(detection, height, width):
    x1 = min(max(int(detection.x), 0), width - 1)
    y1 = min(max(int(detection.y), 0), height - 1)
    x2 = min(max(int(detection.x) + int(detection.width) - 1, 0), width - 1)
    y2 = min(max(int(detection.y) + int(detection.height) - 1, 0), height - 1)
    return x1, y1, x2, y2


def _draw_one(image, detection, sizes):
    height, width = image.shape[:2]
    box_thickness, font_scale, text_thickness = sizes
    if detection.x >= width or detection.y >= height or detection.width <= 0 \
            or detection.height <= 0 or detection.x + detection.width <= 0 \
            or detection.y + detection.height <= 0:
        return  # nothing of it is inside the image
    color = COLORS.get(detection.label, COLORS[_UNKNOWN])
    x1, y1, x2, y2 = _clipped_box(detection, height, width)
    cv2.rectangle(image, (x1, y1), (x2, y2), color, box_thickness)
    text = label_text(detection)
    (text_w, text_h), baseline = cv2.getTextSize(text, FONT, font_scale, text_thickness)
    pad = max(1, text_thickness)
    tag_h = text_h + baseline + 2 * pad
    tag_w = text_w + 2 * pad
    if tag_w > width or tag_h > height:
        return  # the image is too small for a readable tag: the box alone
    # Above the box when there is room, else just inside its top edge (faces at the top).
    top = y1 - tag_h if y1 - tag_h >= 0 else min(y1, height - tag_h)
    left = min(max(x1, 0), width - tag_w)
    cv2.rectangle(image, (left, top), (left + tag_w - 1, top + tag_h - 1), color, cv2.FILLED)
    cv2.putText(image, text, (left + pad, top + pad + text_h), FONT, font_scale,
                TEXT_COLORS.get(detection.label, (0, 0, 0)), text_thickness, cv2.LINE_AA)


def draw_detections(bgr: np.ndarray, detections) -> np.ndarray:
    """Draw `detections` (pipeline.Detection or alike) on `bgr` in place; return `bgr`.

    `bgr` must be a writable HxWx3 uint8 array; boxes partly outside it are clipped.
    """
    if not isinstance(bgr, np.ndarray) or bgr.dtype != np.uint8 or bgr.ndim != 3 \
            or bgr.shape[2] != 3:
        shape = getattr(bgr, 'shape', None)
        dtype = getattr(bgr, 'dtype', type(bgr).__name__)
        raise ValueError(f'draw_detections needs an HxWx3 uint8 BGR image, got shape {shape}, '
                         f'dtype {dtype}')
    if not bgr.flags.writeable:
        raise ValueError('draw_detections draws in place but the image is read-only '
                         '(e.g. a view of a message buffer): pass a copy')
    if bgr.shape[0] == 0 or bgr.shape[1] == 0 or not detections:
        return bgr
    # OpenCV draws in place only on arrays whose pixels are contiguous in each row (row
    # padding is fine); for other views draw on a copy and write it back.
    direct = bgr.strides[2] == 1 and bgr.strides[1] == 3 and bgr.strides[0] > 0
    canvas = bgr if direct else np.ascontiguousarray(bgr)
    sizes = drawing_sizes(*bgr.shape[:2])
    for detection in detections:
        _draw_one(canvas, detection, sizes)
    if not direct:
        bgr[...] = canvas
    return bgr

"""Face masks drawn on real faces: surgical, KN95/FFP2 and cloth, worn right or wrong.

One implementation for the demo video (a light-blue surgical mask on two bundled portraits) and
for training (masks of every kind and colour placed on real unmasked faces by CenterFace's five
landmarks, the MaskTheFace / MaskedFace-Net technique).  A mask worn under the nose or on the chin
is labelled "no mask", as the product counts it.  Plain numpy / OpenCV, no ROS.
"""
from dataclasses import asdict, dataclass
import math

import cv2
import numpy as np

# The head's roll from CenterFace's points: the same measure as the classifier's upright crops.
from mask_detection.faces import roll_degrees

LABEL_MASK = 0
LABEL_NO_MASK = 1

MASK_KINDS = ('surgical', 'kn95', 'cloth')
PLACEMENTS = ('proper', 'under_nose', 'on_chin')
# Base colour and ear-loop colour (BGR) per colour name; 'patterned' draws a print on a base.
COLOURS = {
    'black': ((28, 28, 30), (30, 30, 32)),
    'dark_grey': ((72, 72, 74), (60, 60, 62)),
    'navy': ((82, 44, 24), (70, 40, 25)),
    'white': ((238, 238, 234), (244, 244, 242)),
    'light_blue': ((226, 204, 158), (236, 236, 232)),
    'patterned': ((150, 120, 190), (50, 50, 50)),
}
PATTERNS = ('stripes', 'dots', 'check', 'blots')


@dataclass(frozen=True)
class FaceLandmarks:
    """Points of a frontal face in pixels, enough to place a face mask.

    ``left``/``right`` are as seen in the image (image x grows to the right).
    """

    left_eye: tuple
    right_eye: tuple
    nose_tip: tuple
    mouth: tuple
    chin: tuple
    left_cheek: tuple
    right_cheek: tuple
    left_ear: tuple
    right_ear: tuple

    def scaled(self, scale, offset=(0.0, 0.0)):
        """Return the landmarks mapped by ``p * scale + offset``."""
        return FaceLandmarks(**{
            name: (point[0] * scale + offset[0], point[1] * scale + offset[1])
            for name, point in asdict(self).items()})

    def face_box(self):
        """Return the face box ``(x, y, width, height)``: cheeks to cheeks, forehead to chin."""
        eye_y = (self.left_eye[1] + self.right_eye[1]) / 2
        top = eye_y - 0.9 * (self.nose_tip[1] - eye_y)
        x0, x1 = self.left_cheek[0], self.right_cheek[0]
        return (x0, top, x1 - x0, self.chin[1] - top)


def landmarks_from_face_box(x, y, width, height):
    """Estimate landmarks from a face box that spans forehead to chin and cheek to cheek.

    The proportions were measured on the astronaut photo against its CenterFace box; use them
    for roughly frontal faces only.
    """
    def point(fx, fy):
        return (x + fx * width, y + fy * height)
    return FaceLandmarks(
        left_eye=point(0.24, 0.36), right_eye=point(0.76, 0.38), nose_tip=point(0.47, 0.58),
        mouth=point(0.47, 0.74), chin=point(0.47, 1.0), left_cheek=point(0.0, 0.55),
        right_cheek=point(1.0, 0.55), left_ear=point(-0.06, 0.52), right_ear=point(1.06, 0.5))


def landmarks_from_points(points):
    """Return FaceLandmarks of an upright face from CenterFace's five points.

    ``points``: (5, 2) x, y of left eye, right eye, nose tip, left and right mouth corner.  The
    chin, cheeks and ears follow face proportions (chin below the mouth by 0.65 of the
    eye-to-mouth distance; cheeks one eye distance from the eyes' midpoint), which match the
    hand-measured bundled portraits within about 10 %.
    """
    p = np.asarray(points, np.float64).reshape(5, 2)
    left_eye, right_eye, nose, mouth_l, mouth_r = p
    eye_mid = (left_eye + right_eye) / 2
    mouth = (mouth_l + mouth_r) / 2
    eye_distance = max(1.0, float(np.linalg.norm(right_eye - left_eye)))
    chin = mouth + 0.65 * (mouth - eye_mid)
    # Turned heads: the nose moves towards the far cheek, and so does the face's middle.
    turn = float(np.clip((nose[0] - eye_mid[0]) / eye_distance, -0.5, 0.5))
    half = eye_distance * 1.0
    cheek_y = nose[1]
    left_cheek = (eye_mid[0] - half * (1 - turn), cheek_y)
    right_cheek = (eye_mid[0] + half * (1 + turn), cheek_y)
    left_ear = (left_cheek[0] - 0.12 * half, cheek_y - 0.05 * half)
    right_ear = (right_cheek[0] + 0.12 * half, cheek_y - 0.05 * half)
    return FaceLandmarks(left_eye=tuple(left_eye), right_eye=tuple(right_eye),
                         nose_tip=tuple(nose), mouth=tuple(mouth), chin=tuple(chin),
                         left_cheek=left_cheek, right_cheek=right_cheek, left_ear=left_ear,
                         right_ear=right_ear)


@dataclass(frozen=True)
class MaskStyle:
    """Colours (BGR) and folds of a drawn surgical mask."""

    color: tuple = (226, 204, 158)
    loop_color: tuple = (236, 236, 232)
    pleats: int = 3


LIGHT_BLUE = MaskStyle()
PALE_WHITE = MaskStyle(color=(236, 232, 222), loop_color=(244, 244, 242))


@dataclass(frozen=True)
class MaskSpec:
    """What to draw: ``kind`` (MASK_KINDS), ``colour`` (COLOURS), ``placement`` (PLACEMENTS)."""

    kind: str = 'surgical'
    colour: str = 'light_blue'
    placement: str = 'proper'

    def __post_init__(self):
        if self.kind not in MASK_KINDS:
            raise ValueError(f'mask kind {self.kind!r} is not one of {MASK_KINDS}')
        if self.colour not in COLOURS:
            raise ValueError(f'mask colour {self.colour!r} is not one of {tuple(COLOURS)}')
        if self.placement not in PLACEMENTS:
            raise ValueError(f'placement {self.placement!r} is not one of {PLACEMENTS}')

    @property
    def label(self):
        """Return LABEL_MASK when worn over nose and mouth, else LABEL_NO_MASK."""
        return LABEL_MASK if self.placement == 'proper' else LABEL_NO_MASK

    @property
    def name(self):
        return f'{self.kind}/{self.colour}/{self.placement}'


def random_mask_spec(rng, wrong_p=0.25):
    """Draw a MaskSpec: any kind and colour; worn wrong (half under the nose) with ``wrong_p``."""
    placement = 'proper'
    if rng.random() < wrong_p:
        placement = 'under_nose' if rng.random() < 0.6 else 'on_chin'
    return MaskSpec(kind=MASK_KINDS[int(rng.integers(len(MASK_KINDS)))],
                    colour=tuple(COLOURS)[int(rng.integers(len(COLOURS)))],
                    placement=placement)


def _bezier(p0, p1, p2, count=24):
    """Return ``count`` points of the quadratic Bezier curve p0 -> p2 pulled towards p1."""
    t = np.linspace(0.0, 1.0, count)[:, None]
    p0, p1, p2 = (np.asarray(p, np.float64) for p in (p0, p1, p2))
    return (1 - t) ** 2 * p0 + 2 * (1 - t) * t * p1 + t ** 2 * p2


def _lerp(a, b, t):
    return (a[0] + (b[0] - a[0]) * t, a[1] + (b[1] - a[1]) * t)


@dataclass(frozen=True)
class _MaskShape:
    top: np.ndarray       # top edge, left to right
    bottom: np.ndarray    # bottom line of the folds, left to right
    outline: np.ndarray   # closed polygon
    seam: np.ndarray = None   # centre seam (KN95, cloth), top to bottom

    def row(self, fraction):
        """Return a curve across the mask at ``fraction`` of the way from top to bottom edge."""
        return self.top + (self.bottom - self.top) * fraction


# Per kind: nose-wire height (fraction of the eye-to-nose-tip distance below the eyes), how far
# the side corners drop below it, cheek insets (top, low) as fractions of the face width, how
# far the bottom reaches below the chin, and whether the chin is pointed (KN95's fold).
_KIND_GEOMETRY = {
    'surgical': dict(top=0.42, side_drop=0.36, inset_top=0.06, inset_low=0.11, below_chin=0.03,
                     pointed=False),
    'kn95': dict(top=0.30, side_drop=0.62, inset_top=0.09, inset_low=0.16, below_chin=0.07,
                 pointed=True),
    'cloth': dict(top=0.36, side_drop=0.42, inset_top=0.03, inset_low=0.07, below_chin=0.08,
                  pointed=False),
}


def _mask_shape(lm, kind='surgical'):
    g = _KIND_GEOMETRY[kind]
    eye_y = (lm.left_eye[1] + lm.right_eye[1]) / 2
    nose_len = lm.nose_tip[1] - eye_y
    centre_x = lm.nose_tip[0]
    face_w = lm.right_cheek[0] - lm.left_cheek[0]
    # The nose wire sits on the bridge about halfway down the nose; the sides rest on the
    # cheeks just inside the face outline and the bottom wraps under the chin.
    top_y = eye_y + g['top'] * nose_len
    side_top_y = top_y + g['side_drop'] * nose_len
    left_top = (lm.left_cheek[0] + g['inset_top'] * face_w, side_top_y)
    right_top = (lm.right_cheek[0] - g['inset_top'] * face_w, side_top_y)
    low_y = lm.mouth[1] + 0.45 * (lm.chin[1] - lm.mouth[1])
    left_low = (lm.left_cheek[0] + g['inset_low'] * face_w, low_y)
    right_low = (lm.right_cheek[0] - g['inset_low'] * face_w, low_y)
    chin = (lm.chin[0], lm.chin[1] + g['below_chin'] * face_w)
    # The nose wire makes a flat tent over the nose.
    top = np.vstack([
        _bezier(left_top, _lerp(left_top, (centre_x, top_y), 0.6), (centre_x, top_y)),
        _bezier((centre_x, top_y), _lerp((centre_x, top_y), right_top, 0.4), right_top)[1:]])
    if g['pointed']:
        bottom = np.vstack([_bezier(left_low, _lerp(left_low, chin, 0.5), chin),
                            _bezier(chin, _lerp(chin, right_low, 0.5), right_low)[1:]])
    else:
        bottom = np.vstack([
            _bezier(left_low, (left_low[0] + 0.1 * face_w, chin[1]), chin),
            _bezier(chin, (right_low[0] - 0.1 * face_w, chin[1]), right_low)[1:]])
    # Folds run nearly level across the face, sagging a little in the middle.
    t = np.linspace(0.0, 1.0, len(top))[:, None]
    sag = 0.12 * (chin[1] - low_y) * np.sin(np.pi * t[:, 0])
    folds_bottom = (1 - t) * np.asarray(left_low) + t * np.asarray(right_low)
    folds_bottom[:, 1] += sag
    right_side = _bezier(right_top, (right_top[0] + 0.02 * face_w, (side_top_y + low_y) / 2),
                         right_low)[1:-1]
    left_side = _bezier(left_low, (left_low[0] - 0.02 * face_w, (side_top_y + low_y) / 2),
                        left_top)[1:-1]
    outline = np.vstack([top, right_side, bottom[::-1], left_side])
    seam = None
    if kind != 'surgical':
        seam = _bezier((centre_x, top_y), (centre_x + 0.03 * face_w, (top_y + chin[1]) / 2),
                       chin)
    return _MaskShape(top=top, bottom=folds_bottom, outline=outline, seam=seam)


def _placed(shape, lm, placement):
    """Move a mask drawn over nose and mouth down: under the nose, or onto the chin."""
    if placement == 'proper':
        return shape
    face_w = lm.right_cheek[0] - lm.left_cheek[0]
    old_top = float(shape.outline[:, 1].min())
    old_bottom = float(shape.outline[:, 1].max())
    if placement == 'under_nose':
        # The wire rests between the nose tip and the upper lip: nostrils stay visible.
        new_top = lm.nose_tip[1] + 0.5 * (lm.mouth[1] - lm.nose_tip[1])
        new_bottom = old_bottom + 0.05 * face_w
        squeeze = 1.0
    else:
        # Pulled down below the lower lip, bunched under the chin.
        new_top = lm.mouth[1] + 0.40 * (lm.chin[1] - lm.mouth[1])
        new_bottom = old_bottom + 0.14 * face_w
        squeeze = 0.86
    centre_x = lm.nose_tip[0]

    def move(points):
        if points is None:
            return None
        moved = np.array(points, np.float64)
        moved[:, 1] = new_top + (moved[:, 1] - old_top) * (new_bottom - new_top) / max(
            1e-6, old_bottom - old_top)
        moved[:, 0] = centre_x + (moved[:, 0] - centre_x) * squeeze
        return moved
    return _MaskShape(top=move(shape.top), bottom=move(shape.bottom),
                      outline=move(shape.outline), seam=move(shape.seam))


def _supersampled(shape_hw, draw, factor=4):
    """Draw with ``draw(canvas, scale)`` at ``factor`` times the size; return a float alpha map."""
    h, w = shape_hw
    big = np.zeros((h * factor, w * factor), np.uint8)
    draw(big, factor)
    return cv2.resize(big, (w, h), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0


def _poly(points, scale):
    return [np.round(np.asarray(points) * scale).astype(np.int32).reshape(-1, 1, 2)]


def _pattern(shape_hw, face_w, kind, rng):
    """Return a float map in [0, 1]: where the print's second colour shows."""
    h, w = shape_hw
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    period = max(3.0, face_w * rng.uniform(0.08, 0.2))
    angle = rng.uniform(0, math.pi)
    u = xs * math.cos(angle) + ys * math.sin(angle)
    v = -xs * math.sin(angle) + ys * math.cos(angle)
    if kind == 'stripes':
        values = (np.sin(2 * math.pi * u / period) > 0.3).astype(np.float32)
    elif kind == 'check':
        values = ((np.floor(u / period) + np.floor(v / period)) % 2).astype(np.float32)
    elif kind == 'dots':
        du = (u % period) - period / 2
        dv = (v % period) - period / 2
        values = (du ** 2 + dv ** 2 < (0.28 * period) ** 2).astype(np.float32)
    else:
        noise = rng.normal(0, 1, (max(2, h // 4), max(2, w // 4))).astype(np.float32)
        noise = cv2.resize(noise, (w, h), interpolation=cv2.INTER_CUBIC)
        noise = cv2.GaussianBlur(noise, (0, 0), max(1.0, period / 4))
        values = (noise > np.percentile(noise, 60)).astype(np.float32)
    return cv2.GaussianBlur(values, (0, 0), 0.6)


def _render(bgr, lm, shape, color, loop_color, pleats, texture=None, sheen=0.0,
            fabric_seed=20200311, supersample=4):
    """Return (image, coverage): the mask drawn on ``bgr`` and where it covers the image."""
    h, w = bgr.shape[:2]

    def _supersampled_alpha(shape_hw, draw):
        return _supersampled(shape_hw, draw, supersample)
    face_w = lm.right_cheek[0] - lm.left_cheek[0]
    out = bgr.astype(np.float32)

    # Ear loops first: the mask body covers their ends.
    loop_width = max(1.0, 0.018 * face_w)

    def draw_loops(canvas, scale):
        for corner_top, corner_low, ear in (
                (shape.top[0], shape.bottom[0], lm.left_ear),
                (shape.top[-1], shape.bottom[-1], lm.right_ear)):
            for corner, bend in ((corner_top, -0.10), (corner_low, 0.12)):
                mid = _lerp(corner, ear, 0.5)
                curve = _bezier(corner, (mid[0], mid[1] + bend * face_w), ear)
                cv2.polylines(canvas, _poly(curve, scale), False, 255,
                              max(1, int(round(loop_width * scale))), cv2.LINE_AA)
    loops = _supersampled_alpha((h, w), draw_loops)[..., None]
    out = out * (1 - loops) + np.array(loop_color, np.float32) * loops * 0.97

    alpha = _supersampled_alpha(
        (h, w), lambda canvas, s: cv2.fillPoly(canvas, _poly(shape.outline, s), 255, cv2.LINE_AA))
    # The photo's own lighting, at the scale of the face (fine detail such as the mouth removed).
    gray = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY).astype(np.float32)
    sigma = max(2.0, 0.12 * face_w)
    light = cv2.GaussianBlur(gray, (0, 0), sigma)
    inside = alpha > 0.5
    light = light / max(1.0, float(np.percentile(light[inside], 90))) if inside.any() else 1.0
    light = np.clip(0.55 + 0.45 * light, 0.55, 1.05)

    # Curvature: the fabric turns away from the camera towards the cheeks and under the chin.
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    centre_x = lm.nose_tip[0]
    u = np.clip((xs - centre_x) / (0.5 * face_w), -1.0, 1.0)
    facing = np.clip(np.cos(u * math.pi / 2), 0, 1) ** 0.7
    curvature = 0.72 + 0.28 * facing
    chin_y = float(shape.outline[:, 1].max())
    v = np.clip((ys - lm.mouth[1]) / max(1.0, chin_y - lm.mouth[1]), 0.0, 1.0)
    curvature *= 1.0 - 0.12 * v ** 2

    # Folds: a shadow under each pleat and a highlight on its top.
    folds = np.zeros((h, w), np.float32)
    thickness = max(1.0, 0.022 * face_w)
    for i in range(pleats):
        fraction = 0.30 + 0.5 * i / max(1, pleats - 1) if pleats > 1 else 0.5
        inset = int(0.05 * len(shape.top))
        curve = shape.row(fraction)[inset:len(shape.top) - inset]
        shadow = _supersampled_alpha((h, w), lambda canvas, s, c=curve: cv2.polylines(
            canvas, _poly(c, s), False, 255, max(1, int(round(thickness * s))), cv2.LINE_AA))
        high = _supersampled_alpha((h, w), lambda canvas, s, c=curve: cv2.polylines(
            canvas, _poly(c - [0, 1.2 * thickness], s), False, 255,
            max(1, int(round(0.7 * thickness * s))), cv2.LINE_AA))
        folds += -0.24 * cv2.GaussianBlur(shadow, (0, 0), 0.6 * thickness)
        folds += 0.10 * cv2.GaussianBlur(high, (0, 0), 0.5 * thickness)
    if shape.seam is not None:
        # The centre seam of KN95 and cloth masks: a fold line with light on one side.
        seam_line = _supersampled_alpha((h, w), lambda canvas, s: cv2.polylines(
            canvas, _poly(shape.seam, s), False, 255, max(1, int(round(thickness * s))),
            cv2.LINE_AA))
        folds += -0.22 * cv2.GaussianBlur(seam_line, (0, 0), 0.7 * thickness)
        folds += 0.06 * np.clip((xs - centre_x) / (0.5 * face_w), -1, 1) * (alpha > 0.5)

    # Bound edge: a slightly darker seam just inside the outline.
    eroded = cv2.erode((alpha > 0.5).astype(np.uint8), np.ones((3, 3), np.uint8),
                       iterations=max(1, int(round(0.025 * face_w))))
    seam = cv2.GaussianBlur((alpha > 0.5).astype(np.float32) - eroded, (0, 0), 0.8)

    # Fabric: fine fixed noise (seeded, so the video is deterministic).
    rng = np.random.default_rng(fabric_seed)
    fabric = cv2.GaussianBlur(rng.normal(0, 1, (h, w)).astype(np.float32), (0, 0), 0.7) * 0.025

    shade = light * curvature * (1.0 + folds + fabric) * (1.0 - 0.08 * seam)
    if texture is None:
        mask_rgb = np.array(color, np.float32)[None, None, :] * shade[..., None]
    else:
        second, amount = texture
        base = np.array(color, np.float32)[None, None, :]
        colour_map = base * (1 - amount[..., None]) + np.array(
            second, np.float32)[None, None, :] * amount[..., None]
        mask_rgb = colour_map * shade[..., None]
    if sheen:
        # Dark fabric shows its shape by the light it reflects, not by its own colour.
        mask_rgb += (sheen * 255.0 * light * facing * (1.0 - 0.5 * v))[..., None]
    a = alpha[..., None]
    out = out * (1 - a) + mask_rgb * a
    # A soft contact shadow just outside the mask's lower edge.
    contact = np.clip(cv2.GaussianBlur(alpha, (0, 0), 0.04 * face_w) - alpha, 0, 1)[..., None]
    out *= 1.0 - 0.35 * contact
    coverage = np.clip(np.maximum(alpha, loops[..., 0]) + contact[..., 0], 0.0, 1.0)
    return np.clip(out + 0.5, 0, 255).astype(np.uint8), coverage


def _check_image(bgr):
    if not isinstance(bgr, np.ndarray) or bgr.ndim != 3 or bgr.shape[2] != 3 \
            or bgr.dtype != np.uint8:
        raise ValueError(f'drawing a mask needs a BGR uint8 image, got '
                         f'{getattr(bgr, "dtype", type(bgr))} {getattr(bgr, "shape", "")}')


def draw_surgical_mask(bgr, landmarks, style=LIGHT_BLUE):
    """Return a copy of ``bgr`` with a surgical face mask drawn over the lower face.

    The mask runs from the nose bridge to under the chin, with the folds (pleats), a bound edge,
    shading that follows the face's curvature and the photo's lighting, and ear loops.
    """
    _check_image(bgr)
    shape = _mask_shape(landmarks, 'surgical')
    return _render(bgr, landmarks, shape, style.color, style.loop_color, style.pleats)[0]


def draw_mask(bgr, landmarks, spec=MaskSpec(), rng=None):
    """Return a copy of ``bgr`` with the mask of ``spec`` drawn on an upright face.

    ``rng`` (numpy Generator) varies the colour, print, sheen and fabric a little; without it
    the rendering is deterministic.
    """
    _check_image(bgr)
    random = rng if rng is not None else np.random.default_rng(0)
    color, loop_color = COLOURS[spec.colour]
    if rng is not None:
        jitter = rng.uniform(-14, 14, 3) + rng.uniform(-10, 10)
        color = tuple(float(np.clip(c + j, 0, 255)) for c, j in zip(color, jitter))
    texture = None
    face_w = landmarks.right_cheek[0] - landmarks.left_cheek[0]
    if spec.colour == 'patterned':
        color = tuple(float(c) for c in random.uniform(30, 235, 3))
        second = tuple(float(c) for c in random.uniform(20, 240, 3))
        pattern = PATTERNS[int(random.integers(len(PATTERNS)))]
        texture = (second, _pattern(bgr.shape[:2], face_w, pattern, random))
    dark = max(color) < 110
    sheen = float(random.uniform(0.03, 0.09)) if dark else float(random.uniform(0.0, 0.03))
    shape = _placed(_mask_shape(landmarks, spec.kind), landmarks, spec.placement)
    pleats = 3 if spec.kind == 'surgical' else 0
    # Edges of faces under 150 px are smooth enough at 2x supersampling (4x the speed).
    supersample = 4 if face_w >= 150 else 2
    return _render(bgr, landmarks, shape, color, loop_color, pleats, texture, sheen,
                   fabric_seed=int(random.integers(2 ** 31)), supersample=supersample)[0]


def mask_face(bgr, points, spec=MaskSpec(), rng=None):
    """Draw the mask of ``spec`` on the face with CenterFace's five ``points`` (any roll).

    The face is turned upright around its eyes' midpoint, the mask drawn there, and the mask's
    pixels turned back, so a tilted head gets a tilted mask.  Returns the new image.
    """
    return draw_upright(bgr, points, lambda level, lm, level_points: draw_mask(
        level, lm, spec, rng))


def draw_upright(bgr, points, draw):
    """Return ``bgr`` with ``draw(level_bgr, landmarks, level_points)`` applied to an upright face.

    ``points``: CenterFace's five points of a face with any roll.  The image is turned so that
    the eyes are level, ``draw`` returns the drawn upright image, and only the pixels it changed
    are turned back, so the rest of the photo is not resampled.
    """
    _check_image(bgr)
    p = np.asarray(points, np.float64).reshape(5, 2)
    if not np.isfinite(p).all():
        raise ValueError('landmark points must be finite')
    angle = roll_degrees(p)
    if abs(angle) < 2.0:
        return draw(bgr, landmarks_from_points(p), p)
    h, w = bgr.shape[:2]
    centre = tuple(float(c) for c in (p[0] + p[1]) / 2)
    upright = cv2.getRotationMatrix2D(centre, angle, 1.0)
    back = cv2.invertAffineTransform(upright)
    level = cv2.warpAffine(bgr, upright, (w, h), flags=cv2.INTER_LINEAR,
                           borderMode=cv2.BORDER_REFLECT_101)
    level_points = np.hstack([p, np.ones((5, 1))]) @ upright.T
    drawn = draw(level, landmarks_from_points(level_points), level_points)
    changed = (np.abs(drawn.astype(np.int16) - level.astype(np.int16)).max(axis=2) > 0)
    coverage = cv2.GaussianBlur(changed.astype(np.float32), (0, 0), 0.7)
    drawn_back = cv2.warpAffine(drawn, back, (w, h), flags=cv2.INTER_LINEAR,
                                borderMode=cv2.BORDER_REFLECT_101).astype(np.float32)
    coverage = np.clip(cv2.warpAffine(coverage, back, (w, h), flags=cv2.INTER_LINEAR), 0, 1)
    out = bgr.astype(np.float32) * (1 - coverage[..., None]) + drawn_back * coverage[..., None]
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


BEARD_STYLES = ('full', 'goatee', 'moustache', 'stubble')
# Hair colours (BGR): black, dark brown, brown, grey, ginger.
HAIR_COLOURS = ((22, 22, 24), (28, 38, 52), (45, 62, 88), (128, 130, 134), (40, 78, 140))


def _beard_outline(lm, points, style):
    """Return the closed polygon a beard of ``style`` covers on an upright face."""
    mouth_l, mouth_r = points[3], points[4]
    eye_y = (lm.left_eye[1] + lm.right_eye[1]) / 2
    nose_len = lm.nose_tip[1] - eye_y
    face_w = lm.right_cheek[0] - lm.left_cheek[0]
    mouth_w = max(1.0, float(mouth_r[0] - mouth_l[0]))
    # Between the nose's base and the upper lip: where a moustache grows.
    lip_top = lm.mouth[1] - 0.12 * mouth_w
    stache_top = lm.nose_tip[1] + 0.25 * (lip_top - lm.nose_tip[1])
    chin = (lm.chin[0], lm.chin[1] + 0.1 * face_w)
    if style == 'moustache':
        left = (mouth_l[0] - 0.22 * mouth_w, lm.mouth[1] + 0.05 * mouth_w)
        right = (mouth_r[0] + 0.22 * mouth_w, lm.mouth[1] + 0.05 * mouth_w)
        top = np.vstack([_bezier(left, (left[0] + 0.1 * mouth_w, stache_top),
                                 (lm.mouth[0], stache_top)),
                         _bezier((lm.mouth[0], stache_top),
                                 (right[0] - 0.1 * mouth_w, stache_top), right)[1:]])
        low = _bezier(right, (lm.mouth[0], lip_top + 0.05 * mouth_w), left)[1:-1]
        return np.vstack([top, low])
    if style == 'goatee':
        left = (mouth_l[0] - 0.3 * mouth_w, stache_top + 0.2 * (lip_top - stache_top))
        right = (mouth_r[0] + 0.3 * mouth_w, left[1])
        top = _bezier(left, (lm.mouth[0], stache_top - 0.05 * mouth_w), right)
        low = np.vstack([
            _bezier(right, (right[0] + 0.05 * mouth_w, chin[1]), chin)[1:],
            _bezier(chin, (left[0] - 0.05 * mouth_w, chin[1]), left)[1:-1]])
        return np.vstack([top, low])
    # Full beard and stubble: sideburns down the jaw, the cheek line above the mouth.
    side_y = eye_y + 0.75 * nose_len
    left_burn = (lm.left_cheek[0] + 0.04 * face_w, side_y)
    right_burn = (lm.right_cheek[0] - 0.04 * face_w, side_y)
    left_cheek = (mouth_l[0] - 0.45 * mouth_w, lm.nose_tip[1] + 0.1 * nose_len)
    right_cheek = (mouth_r[0] + 0.45 * mouth_w, lm.nose_tip[1] + 0.1 * nose_len)
    left_jaw = (lm.left_cheek[0] + 0.1 * face_w, lm.mouth[1] + 0.5 * (lm.chin[1] - lm.mouth[1]))
    right_jaw = (lm.right_cheek[0] - 0.1 * face_w, left_jaw[1])
    top = np.vstack([
        _bezier(left_burn, _lerp(left_burn, left_cheek, 0.5), left_cheek),
        _bezier(left_cheek, (lm.mouth[0] - 0.3 * mouth_w, stache_top),
                (lm.mouth[0], stache_top))[1:],
        _bezier((lm.mouth[0], stache_top), (lm.mouth[0] + 0.3 * mouth_w, stache_top),
                right_cheek)[1:],
        _bezier(right_cheek, _lerp(right_cheek, right_burn, 0.5), right_burn)[1:]])
    low = np.vstack([
        _bezier(right_burn, (right_burn[0] + 0.01 * face_w, right_jaw[1]), right_jaw)[1:],
        _bezier(right_jaw, (right_jaw[0] - 0.05 * face_w, chin[1]), chin)[1:],
        _bezier(chin, (left_jaw[0] + 0.05 * face_w, chin[1]), left_jaw)[1:],
        _bezier(left_jaw, (left_burn[0] - 0.01 * face_w, left_jaw[1]), left_burn)[1:-1]])
    return np.vstack([top, low])


def _hair_texture(shape_hw, face_w, rng):
    """Return a float map in [0, 1]: short crossing strands with patchy density (a beard)."""
    h, w = shape_hw
    texture = np.zeros((h, w), np.float32)
    for tilt in (-1.0, 1.0):
        length = max(2, int(round(face_w * rng.uniform(0.015, 0.035))))
        angle = math.radians(90 + tilt * rng.uniform(10, 35))
        kernel = np.zeros((2 * length + 1, 2 * length + 1), np.float32)
        dx, dy = math.cos(angle) * length, math.sin(angle) * length
        cv2.line(kernel, (int(round(length - dx)), int(round(length - dy))),
                 (int(round(length + dx)), int(round(length + dy))), 1.0, 1, cv2.LINE_AA)
        kernel /= max(1e-6, kernel.sum())
        texture += cv2.filter2D(rng.normal(0.0, 1.0, (h, w)).astype(np.float32), -1, kernel)
    texture = (texture - texture.mean()) / max(1e-6, float(texture.std()))
    patches = cv2.GaussianBlur(rng.normal(0.0, 1.0, (h, w)).astype(np.float32), (0, 0),
                               max(1.0, 0.06 * face_w))
    patches = (patches - patches.mean()) / max(1e-6, float(patches.std()))
    return np.clip(0.5 + 0.2 * texture + 0.12 * patches, 0.0, 1.0)


def draw_beard(bgr, landmarks, points, style='full', rng=None):
    """Return a copy of ``bgr`` with facial hair of ``style`` (BEARD_STYLES) on an upright face.

    ``points``: the face's five points (the mouth corners shape the moustache and the lips are
    left bare).  The hair takes the photo's lighting, so a beard in a dim room is dim.  A bearded
    face without a mask is still "no mask": training renders these so that dark hair on the
    lower face is not taken for a dark mask.
    """
    _check_image(bgr)
    if style not in BEARD_STYLES:
        raise ValueError(f'beard style {style!r} is not one of {BEARD_STYLES}')
    random = rng if rng is not None else np.random.default_rng(0)
    p = np.asarray(points, np.float64).reshape(5, 2)
    lm = landmarks
    h, w = bgr.shape[:2]
    face_w = lm.right_cheek[0] - lm.left_cheek[0]
    mouth_w = max(1.0, float(p[4][0] - p[3][0]))
    outline = _beard_outline(lm, p, 'full' if style == 'stubble' else style)
    region = _supersampled((h, w), lambda canvas, s: cv2.fillPoly(
        canvas, _poly(outline, s), 255, cv2.LINE_AA), 2)
    # The lips stay bare.
    lips = _supersampled((h, w), lambda canvas, s: cv2.ellipse(
        canvas, (int(round(lm.mouth[0] * s)), int(round((lm.mouth[1] + 0.1 * mouth_w) * s))),
        (max(1, int(round(0.6 * mouth_w * s))), max(1, int(round(0.22 * mouth_w * s)))),
        0, 0, 360, 255, -1, cv2.LINE_AA), 2)
    bare = (np.clip(region - lips, 0.0, 1.0) > 0.5).astype(np.uint8)
    strands = _hair_texture((h, w), face_w, random)
    # Ragged edges: hair thins out over a band inside the outline, unevenly, instead of
    # stopping at a drawn line.
    fade = max(1.0, (0.03 if style == 'moustache' else 0.06) * face_w)
    inside_depth = cv2.distanceTransform(bare, cv2.DIST_L2, 3)
    alpha = np.clip((inside_depth + (strands - 0.5) * fade) / fade, 0.0, 1.0) * bare
    alpha = cv2.GaussianBlur(alpha, (0, 0), 0.6)
    if style == 'stubble':
        density = float(random.uniform(0.3, 0.55))
        coverage = alpha * density * np.clip(2.0 * strands - 0.2, 0.0, 1.0)
    else:
        density = float(random.uniform(0.8, 0.97))
        coverage = alpha * np.clip(density * (0.5 + strands), 0.0, 1.0)
    colour = np.array(HAIR_COLOURS[int(random.integers(len(HAIR_COLOURS)))], np.float32)
    colour = np.clip(colour + random.uniform(-8, 8, 3), 0, 255)
    # The photo's own light on the face, at the scale of the face: absolute, unlike a mask's
    # shading, because hair colours are those of a face in good light (grey level about 150).
    gray = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY).astype(np.float32)
    light = np.clip(cv2.GaussianBlur(gray, (0, 0), max(2.0, 0.12 * face_w)) / 150.0, 0.1, 1.2)
    # Hair is shaded strand by strand: lighter tips over darker roots.
    hair = colour[None, None, :] * (light * (0.6 + 0.8 * strands))[..., None]
    a = coverage[..., None]
    out = bgr.astype(np.float32) * (1 - a) + hair * a
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def beard_face(bgr, points, style='full', rng=None):
    """Draw facial hair of ``style`` on the face with CenterFace's five ``points`` (any roll)."""
    return draw_upright(bgr, points, lambda level, lm, level_points: draw_beard(
        level, lm, level_points, style, rng))

"""The built-in demo video: real portraits, with and without a drawn surgical mask, in motion.

Needs no download: the photos ship inside packages the project already depends on
(scikit-image's ``astronaut.png``, matplotlib's ``grace_hopper.jpg``).  Each photo appears twice on
a wide canvas, once as it is and once with a surgical mask drawn over the lower face; a virtual
camera pans and zooms across the canvas.  The output is deterministic and cached, so a second run
reuses the file.  A JSON file next to the video gives the true face boxes and labels per frame.

    python -m demo.video --duration 20 --out demo.mp4
"""
import argparse
from dataclasses import asdict, dataclass, field
import hashlib
import json
import math
import os
from pathlib import Path
import sys
import tempfile

import cv2
import numpy as np

# Bump when the rendering changes, so that cached videos are rebuilt.
RENDER_VERSION = 1

LABEL_MASK = 0
LABEL_NO_MASK = 1

# Canvas height in pixels; every portrait is scaled to it.
CANVAS_HEIGHT = 600
# Width each portrait is cropped to, centred on the face, so that two faces fit in one view.
PORTRAIT_WIDTH = 440


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


@dataclass(frozen=True)
class MaskStyle:
    """Colours (BGR) and folds of a drawn surgical mask."""

    color: tuple = (226, 204, 158)
    loop_color: tuple = (236, 236, 232)
    pleats: int = 3


LIGHT_BLUE = MaskStyle()
PALE_WHITE = MaskStyle(color=(236, 232, 222), loop_color=(244, 244, 242))


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

    def row(self, fraction):
        """Return a curve across the mask at ``fraction`` of the way from top to bottom edge."""
        return self.top + (self.bottom - self.top) * fraction


def _mask_shape(lm):
    eye_y = (lm.left_eye[1] + lm.right_eye[1]) / 2
    nose_len = lm.nose_tip[1] - eye_y
    centre_x = lm.nose_tip[0]
    face_w = lm.right_cheek[0] - lm.left_cheek[0]
    # The nose wire sits on the bridge about halfway down the nose; the sides rest on the
    # cheeks just inside the face outline and the bottom wraps under the chin.
    top_y = eye_y + 0.42 * nose_len
    side_top_y = top_y + 0.36 * nose_len
    left_top = (lm.left_cheek[0] + 0.06 * face_w, side_top_y)
    right_top = (lm.right_cheek[0] - 0.06 * face_w, side_top_y)
    low_y = lm.mouth[1] + 0.45 * (lm.chin[1] - lm.mouth[1])
    left_low = (lm.left_cheek[0] + 0.11 * face_w, low_y)
    right_low = (lm.right_cheek[0] - 0.11 * face_w, low_y)
    chin = (lm.chin[0], lm.chin[1] + 0.03 * face_w)
    # The nose wire makes a flat tent over the nose.
    top = np.vstack([
        _bezier(left_top, _lerp(left_top, (centre_x, top_y), 0.6), (centre_x, top_y)),
        _bezier((centre_x, top_y), _lerp((centre_x, top_y), right_top, 0.4), right_top)[1:]])
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
    return _MaskShape(top=top, bottom=folds_bottom, outline=outline)


def _supersampled_alpha(shape_hw, draw, factor=4):
    """Draw with ``draw(canvas, scale)`` at ``factor`` times the size; return a float alpha map."""
    h, w = shape_hw
    big = np.zeros((h * factor, w * factor), np.uint8)
    draw(big, factor)
    return cv2.resize(big, (w, h), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0


def _poly(points, scale):
    return [np.round(np.asarray(points) * scale).astype(np.int32).reshape(-1, 1, 2)]


def draw_surgical_mask(bgr, landmarks, style=LIGHT_BLUE):
    """Return a copy of ``bgr`` with a surgical face mask drawn over the lower face.

    The mask runs from the nose bridge to under the chin, with the folds (pleats), a bound edge,
    shading that follows the face's curvature and the photo's lighting, and ear loops.
    """
    if bgr.ndim != 3 or bgr.shape[2] != 3 or bgr.dtype != np.uint8:
        raise ValueError(f'draw_surgical_mask needs a BGR uint8 image, got {bgr.dtype} '
                         f'{bgr.shape}')
    lm = landmarks
    shape = _mask_shape(lm)
    h, w = bgr.shape[:2]
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
    out = out * (1 - loops) + np.array(style.loop_color, np.float32) * loops * 0.97

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
    curvature = 0.72 + 0.28 * np.clip(np.cos(u * math.pi / 2), 0, 1) ** 0.7
    chin_y = float(shape.outline[:, 1].max())
    v = np.clip((ys - lm.mouth[1]) / max(1.0, chin_y - lm.mouth[1]), 0.0, 1.0)
    curvature *= 1.0 - 0.12 * v ** 2

    # Folds: a shadow under each pleat and a highlight on its top.
    folds = np.zeros((h, w), np.float32)
    thickness = max(1.0, 0.022 * face_w)
    for i in range(style.pleats):
        fraction = 0.30 + 0.5 * i / max(1, style.pleats - 1) if style.pleats > 1 else 0.5
        inset = int(0.05 * len(shape.top))
        curve = shape.row(fraction)[inset:len(shape.top) - inset]
        shadow = _supersampled_alpha((h, w), lambda canvas, s, c=curve: cv2.polylines(
            canvas, _poly(c, s), False, 255, max(1, int(round(thickness * s))), cv2.LINE_AA))
        high = _supersampled_alpha((h, w), lambda canvas, s, c=curve: cv2.polylines(
            canvas, _poly(c - [0, 1.2 * thickness], s), False, 255,
            max(1, int(round(0.7 * thickness * s))), cv2.LINE_AA))
        folds += -0.24 * cv2.GaussianBlur(shadow, (0, 0), 0.6 * thickness)
        folds += 0.10 * cv2.GaussianBlur(high, (0, 0), 0.5 * thickness)

    # Bound edge: a slightly darker seam just inside the outline.
    eroded = cv2.erode((alpha > 0.5).astype(np.uint8), np.ones((3, 3), np.uint8),
                       iterations=max(1, int(round(0.025 * face_w))))
    seam = cv2.GaussianBlur((alpha > 0.5).astype(np.float32) - eroded, (0, 0), 0.8)

    # Fabric: fine fixed noise (seeded, so the video is deterministic).
    rng = np.random.default_rng(20200311)
    fabric = cv2.GaussianBlur(rng.normal(0, 1, (h, w)).astype(np.float32), (0, 0), 0.7) * 0.025

    shade = light * curvature * (1.0 + folds + fabric) * (1.0 - 0.08 * seam)
    mask_rgb = np.array(style.color, np.float32)[None, None, :] * shade[..., None]
    a = alpha[..., None]
    out = out * (1 - a) + mask_rgb * a
    # A soft contact shadow just outside the mask's lower edge.
    contact = np.clip(cv2.GaussianBlur(alpha, (0, 0), 0.04 * face_w) - alpha, 0, 1)[..., None]
    out *= 1.0 - 0.35 * contact
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


@dataclass(frozen=True)
class Portrait:
    """One real photo and the landmarks of its face (measured by hand on the photo)."""

    name: str
    bgr: np.ndarray = field(repr=False)
    landmarks: FaceLandmarks


def _astronaut():
    from skimage import data
    landmarks = FaceLandmarks(
        left_eye=(198, 102), right_eye=(247, 103), nose_tip=(222, 128), mouth=(222, 146),
        chin=(222, 179), left_cheek=(180, 124), right_cheek=(268, 124), left_ear=(174, 122),
        right_ear=(274, 120))
    return Portrait('astronaut (scikit-image)', np.ascontiguousarray(data.astronaut()[:, :, ::-1]),
                    landmarks)


def _grace_hopper():
    import matplotlib.cbook
    with matplotlib.cbook.get_sample_data('grace_hopper.jpg') as stream:
        encoded = np.frombuffer(stream.read(), np.uint8)
    bgr = cv2.imdecode(encoded, cv2.IMREAD_COLOR)
    landmarks = FaceLandmarks(
        left_eye=(220, 188), right_eye=(305, 186), nose_tip=(264, 250), mouth=(262, 282),
        chin=(260, 332), left_cheek=(168, 240), right_cheek=(356, 238), left_ear=(162, 244),
        right_ear=(362, 242))
    return Portrait('Grace Hopper (matplotlib sample data)', bgr, landmarks)


def bundled_portraits():
    """Return the real photos with frontal faces that ship with the project's dependencies."""
    return [_astronaut(), _grace_hopper()]


@dataclass(frozen=True)
class CanvasFace:
    """A face on the canvas: box ``(x, y, width, height)`` and its true label."""

    box: tuple
    label: int
    source: str


def _fit_portrait(portrait):
    """Scale a portrait to the canvas height and crop it to PORTRAIT_WIDTH around the face."""
    scale = CANVAS_HEIGHT / portrait.bgr.shape[0]
    scaled = cv2.resize(portrait.bgr, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    face_x = portrait.landmarks.nose_tip[0] * scale
    left = int(round(min(max(face_x - PORTRAIT_WIDTH / 2, 0), scaled.shape[1] - PORTRAIT_WIDTH)))
    return (np.ascontiguousarray(scaled[:CANVAS_HEIGHT, left:left + PORTRAIT_WIDTH]),
            portrait.landmarks.scaled(scale, (-left, 0.0)))


def build_canvas(portraits=None):
    """Lay the portraits out in a row: each once without and once with a mask.

    Order: A bare, B masked, A masked, B bare, so that every view of two neighbours shows one
    face of each kind.  Returns ``(canvas, faces)``.
    """
    portraits = portraits if portraits is not None else bundled_portraits()
    if len(portraits) < 2:
        raise ValueError('build_canvas needs at least two portraits')
    fitted = [_fit_portrait(p) for p in portraits[:2]]
    styles = (LIGHT_BLUE, PALE_WHITE)
    plan = [(0, False), (1, True), (0, True), (1, False)]
    tiles, faces = [], []
    for slot, (index, masked) in enumerate(plan):
        image, landmarks = fitted[index]
        if masked:
            image = draw_surgical_mask(image, landmarks, styles[(index + 1) % 2])
        tiles.append(image)
        x, y, w, h = landmarks.face_box()
        faces.append(CanvasFace(box=(x + slot * PORTRAIT_WIDTH, y, w, h),
                                label=LABEL_MASK if masked else LABEL_NO_MASK,
                                source=portraits[index].name))
    return np.hstack(tiles), faces


@dataclass(frozen=True)
class VideoSpec:
    """What to render: length, frame rate and frame size."""

    duration_s: float = 24.0
    fps: float = 15.0
    width: int = 640
    height: int = 480

    def __post_init__(self):
        if not (self.duration_s > 0 and self.fps > 0):
            raise ValueError(f'duration_s and fps must be > 0, got {self.duration_s}, {self.fps}')
        if self.width < 64 or self.height < 48:
            raise ValueError(f'frame size {self.width}x{self.height} is too small (min 64x48)')

    @property
    def frame_count(self):
        return max(1, int(round(self.duration_s * self.fps)))


# Virtual camera key frames on the canvas: (centre x, centre y, view width), in canvas pixels
# (x in units of PORTRAIT_WIDTH so the path follows the layout).  Views alternate between two
# faces at once and a close-up of one.
_KEYFRAMES = [
    (1.0, 300, 800),    # A bare + B masked
    (0.5, 180, 340),    # close-up: A bare
    (1.5, 280, 470),    # pan to B masked
    (2.0, 300, 800),    # zoom out: B masked + A masked
    (2.5, 190, 360),    # close-up: A masked
    (3.5, 280, 500),    # pan to B bare
    (3.0, 300, 800),    # zoom out: A masked + B bare
]


def _ease(t):
    return 0.5 - 0.5 * math.cos(math.pi * t)


def camera_view(t, canvas_shape, aspect):
    """Return the view ``(centre x, centre y, view width)`` at ``t`` in [0, 1] of the clip."""
    segments = len(_KEYFRAMES) - 1
    position = min(max(t, 0.0), 1.0) * segments
    index = min(int(position), segments - 1)
    local = _ease(position - index)
    (x0, y0, w0), (x1, y1, w1) = _KEYFRAMES[index], _KEYFRAMES[index + 1]
    # Zoom geometrically so that it looks uniform.
    width = w0 * (w1 / w0) ** local
    cx = (x0 + (x1 - x0) * local) * PORTRAIT_WIDTH
    cy = y0 + (y1 - y0) * local
    height_px, width_px = canvas_shape[:2]
    width = min(width, width_px, height_px * aspect)
    view_h = width / aspect
    cx = min(max(cx, width / 2), width_px - width / 2)
    cy = min(max(cy, view_h / 2), height_px - view_h / 2)
    return cx, cy, width


def render_frames(spec=VideoSpec(), canvas=None):
    """Yield ``(frame, faces)`` for every frame: the BGR frame and its true faces.

    ``faces`` lists ``{'x', 'y', 'width', 'height', 'label'}`` (frame pixels) for the faces
    whose box is at least 80 % inside the frame.
    """
    canvas, canvas_faces = canvas if canvas is not None else build_canvas()
    aspect = spec.width / spec.height
    count = spec.frame_count
    for index in range(count):
        t = index / max(1, count - 1)
        cx, cy, view_w = camera_view(t, canvas.shape, aspect)
        scale = spec.width / view_w
        matrix = np.float32([[scale, 0, spec.width / 2 - cx * scale],
                             [0, scale, spec.height / 2 - cy * scale]])
        frame = cv2.warpAffine(canvas, matrix, (spec.width, spec.height), flags=cv2.INTER_AREA
                               if scale < 1 else cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        faces = []
        for face in canvas_faces:
            x, y, w, h = face.box
            fx, fy, fw, fh = (x * scale + matrix[0, 2], y * scale + matrix[1, 2],
                              w * scale, h * scale)
            ix = max(0.0, min(fx + fw, spec.width) - max(fx, 0.0))
            iy = max(0.0, min(fy + fh, spec.height) - max(fy, 0.0))
            if ix * iy >= 0.8 * fw * fh:
                faces.append({'x': round(float(fx), 1), 'y': round(float(fy), 1),
                              'width': round(float(fw), 1), 'height': round(float(fh), 1),
                              'label': face.label})
        yield frame, faces


@dataclass(frozen=True)
class DemoVideo:
    """A rendered demo video and its ground truth file."""

    path: Path
    truth_path: Path
    frame_count: int
    fps: float
    width: int
    height: int


def write_demo_video(path, spec=VideoSpec()):
    """Render the demo video to ``path`` (mp4v) and its truth to ``path`` + ``.json``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    truth_path = path.with_name(path.name + '.json')
    # Write to temporary names and rename, so an interrupted run leaves no half file behind.
    fd, tmp_name = tempfile.mkstemp(suffix='.mp4', prefix='.demo-', dir=path.parent)
    os.close(fd)
    writer = cv2.VideoWriter(tmp_name, cv2.VideoWriter_fourcc(*'mp4v'), spec.fps,
                             (spec.width, spec.height))
    if not writer.isOpened():
        os.unlink(tmp_name)
        raise RuntimeError(f'OpenCV cannot write an mp4v video to {path}')
    tmp_truth = tmp_name + '.json'
    truth = []
    try:
        try:
            for frame, faces in render_frames(spec):
                writer.write(frame)
                truth.append(faces)
        finally:
            writer.release()
        meta = {'render_version': RENDER_VERSION, 'spec': asdict(spec), 'frame_count': len(truth),
                'labels': {'mask': LABEL_MASK, 'no_mask': LABEL_NO_MASK},
                'sources': [p.name for p in bundled_portraits()], 'faces': truth}
        Path(tmp_truth).write_text(json.dumps(meta, separators=(',', ':')))
        os.chmod(tmp_name, 0o644)  # mkstemp makes it private
        os.replace(tmp_name, path)
        os.replace(tmp_truth, truth_path)
    except BaseException:
        for name in (tmp_name, tmp_truth):
            if os.path.exists(name):
                os.unlink(name)
        raise
    return DemoVideo(path, truth_path, len(truth), spec.fps, spec.width, spec.height)


def default_cache_dir():
    """Return where demo videos are cached: $MASK_DETECTION_CACHE or ~/.cache/mask_detection."""
    if os.environ.get('MASK_DETECTION_CACHE'):
        return Path(os.environ['MASK_DETECTION_CACHE'])
    base = os.environ.get('XDG_CACHE_HOME') or Path.home() / '.cache'
    return Path(base) / 'mask_detection'


def _cache_key(spec):
    import matplotlib
    import skimage
    text = json.dumps([RENDER_VERSION, asdict(spec), cv2.__version__, skimage.__version__,
                       matplotlib.__version__], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def demo_video(spec=VideoSpec(), cache_dir=None, force=False):
    """Return the demo video for ``spec``, rendering it only when it is not cached yet."""
    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    path = cache_dir / f'demo_{spec.width}x{spec.height}_{spec.duration_s:g}s_' \
                       f'{spec.fps:g}fps_{_cache_key(spec)}.mp4'
    truth_path = path.with_name(path.name + '.json')
    if not force and path.is_file() and truth_path.is_file():
        try:
            meta = json.loads(truth_path.read_text())
            return DemoVideo(path, truth_path, int(meta['frame_count']), spec.fps, spec.width,
                             spec.height)
        except (ValueError, KeyError):
            pass  # a damaged truth file: render again
    return write_demo_video(path, spec)


def main(argv=None):
    parser = argparse.ArgumentParser(
        description='Build (or reuse) the built-in demo video and print its path.')
    parser.add_argument('--duration', type=float, default=VideoSpec.duration_s,
                        help='length in seconds (default %(default)s)')
    parser.add_argument('--fps', type=float, default=VideoSpec.fps)
    parser.add_argument('--width', type=int, default=VideoSpec.width)
    parser.add_argument('--height', type=int, default=VideoSpec.height)
    parser.add_argument('--out', type=Path,
                        help='write here instead of the cache (always renders)')
    parser.add_argument('--cache-dir', type=Path, help='cache folder (default: %s)'
                        % default_cache_dir())
    parser.add_argument('--force', action='store_true', help='render even when cached')
    args = parser.parse_args(argv)
    try:
        spec = VideoSpec(args.duration, args.fps, args.width, args.height)
    except ValueError as error:
        parser.error(str(error))
    if args.out:
        video = write_demo_video(args.out, spec)
    else:
        video = demo_video(spec, args.cache_dir, args.force)
    print(video.path)
    return 0


if __name__ == '__main__':
    sys.exit(main())

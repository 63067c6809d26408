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

# The mask drawing lives in mask_synthesis (shared with training); these names stay importable
# from here for the demo's users.
from mask_detection.mask_synthesis import (  # noqa: F401
    draw_surgical_mask, FaceLandmarks, LABEL_MASK, LABEL_NO_MASK, landmarks_from_face_box,
    LIGHT_BLUE, MaskStyle, PALE_WHITE)

# Bump when the rendering changes, so that cached videos are rebuilt.
RENDER_VERSION = 1

# Canvas height in pixels; every portrait is scaled to it.
CANVAS_HEIGHT = 600
# Width each portrait is cropped to, centred on the face, so that two faces fit in one view.
PORTRAIT_WIDTH = 440


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

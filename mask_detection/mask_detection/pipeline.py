"""Frame -> detections: face detector, then all faces through the classifier in one batch.

Configuration is a dataclass (the detector node fills it from ROS parameters); the result is
plain dataclasses plus per-stage timings in milliseconds.  Nothing here imports rclpy.
"""
from dataclasses import dataclass, field
import math
import time
from typing import Optional

import numpy as np

from mask_detection.drawing import draw_detections
from mask_detection.engines import ENGINE_NAMES
from mask_detection.faces import (
    as_bgr_frame, create_face_detector, DETECTOR_NAMES, FaceDetector, FaceDetectorError,
    resolve_detector_name)

# Label values, as in mask_detection_msgs/MaskDetection (mask = 0, no mask = 1).
MASK, NO_MASK, UNKNOWN = 0, 1, 2
LABEL_NAMES = {MASK: 'mask', NO_MASK: 'no_mask', UNKNOWN: 'unknown'}


@dataclass
class Detection:
    """One face of a frame and its mask label (fields as in MaskDetection.msg)."""

    x: int
    y: int
    width: int
    height: int
    label: int
    mask_probability: float
    confidence: float
    face_score: float
    track_id: int = 0


@dataclass
class PipelineResult:
    """The detections of one frame and the time each stage took, in ms."""

    detections: list
    timings: dict = field(default_factory=dict)


# Two frames in flight, each detector on one core, beat one frame detected on two cores: ONNX
# Runtime's CenterFace gains little from a second thread at this input size (BENCHMARKS.md).
DEFAULT_FRAMES_IN_FLIGHT = 2


@dataclass
class PipelineConfig:
    """Settings of the mask detection pipeline (the node's ROS parameters map onto these)."""

    # 'auto' (CenterFace when its model file is installed, else Haar), 'centerface', 'haar'.
    face_detector: str = 'auto'
    # Detector processing scale in (0, 1] (0.5 = half resolution); 0 = the detector's default
    # (CenterFace 0.5, Haar 1.0).
    detection_scale: float = 0.0
    # CenterFace below full scale: frames are not shrunk to a longer side under this many px
    # (0 = no floor), so a small webcam frame (240x240) is searched at full resolution for at
    # most the cost of 640x480 at half size.
    detection_min_side: int = 320
    # CenterFace: minimum face score in [0, 1], and NMS overlap.
    face_score_threshold: float = 0.35
    nms_iou: float = 0.3
    # Engine of CenterFace and the classifier: 'auto' (ONNX Runtime for both when installed),
    # 'onnxruntime', or 'opencv' (CenterFace in OpenCV DNN, the classifier in torch).
    inference_engine: str = 'auto'
    # ONNX Runtime threads of the face detector; 0 = all usable cores.
    detector_threads: int = 0
    # CenterFace below full scale: candidates scoring at least this (below face_score_threshold)
    # and smaller than 48 px get a full-resolution look around them; 0 = off.  0.2 with the
    # half-size pass: dev-set recall of 24-48 px faces 87 -> 94 %, < 24 px 17 -> 50 %, for
    # about 1.23x the CPU time per frame (benchmarks.detector_benchmark --refine; BENCHMARKS.md).
    refine_threshold: float = 0.2
    # Haar cascade: window step, neighbours, face size range in px (max 0 = no limit).
    haar_scale_factor: float = 1.1
    haar_min_neighbors: int = 5
    haar_min_size: int = 24
    haar_max_size: int = 0
    # Classifier model file; '' = the shipped default model.
    model_path: str = ''
    # Crop faces upright (eyes level) by the detector's landmarks before classifying, when the
    # head is rolled 3-45 degrees, faces the camera and the face is 32 px or more
    # (classifier.upright_angle; CenterFace only: Haar has no landmarks).  Held-out faces rolled
    # 10 degrees or more: 91.0 -> 96.4 % labelled right (MODEL_CARD.md).
    align_faces: bool = True
    # 'cpu', 'cuda' or 'cuda:N'.
    device: str = 'cpu'
    # Classifier threads (torch's process-wide setting, and the ONNX Runtime session's);
    # 0 = torch's default / all cores.  1 by default: a batch of a few faces gains little
    # from more threads, and torch's spinning worker threads made the classifier 8-14x slower
    # whenever other processes held the cores (benchmarks.benchmark pipeline: BENCHMARKS.md).
    num_threads: int = 1
    # P(mask) >= mask_threshold -> MASK, else NO_MASK.
    mask_threshold: float = 0.5
    # ... then UNKNOWN when the chosen label's probability is below this.
    unknown_threshold: float = 0.6
    # Faces whose shorter side is below this (px) are classified but labelled UNKNOWN.  16, not
    # 24: CenterFace boxes are often a little smaller than annotated ones, and at 24 a third of
    # the found 24-48 px faces became UNKNOWN although the classifier labels 90% of them right
    # (held-out dev photos, training.evaluate detect; see MODEL_CARD.md).
    min_face_size: int = 16

    def __post_init__(self):
        self.validate()

    def validate(self):
        """Raise ValueError naming the first setting that is out of range."""
        if self.inference_engine not in ENGINE_NAMES:
            raise ValueError(f'inference_engine must be one of {", ".join(ENGINE_NAMES)}, '
                             f'got {self.inference_engine!r}')
        if self.face_detector not in DETECTOR_NAMES:
            raise ValueError(f'face_detector must be one of {", ".join(DETECTOR_NAMES)}, '
                             f'got {self.face_detector!r}')
        for name in ('mask_threshold', 'unknown_threshold', 'face_score_threshold',
                     'refine_threshold'):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and 0.0 <= value <= 1.0):
                raise ValueError(f'{name} must be in [0, 1], got {value!r}')
        if not 0.0 <= self.detection_scale <= 1.0:
            raise ValueError(f'detection_scale must be in (0, 1] or 0 (the detector default), '
                             f'got {self.detection_scale}')
        if not 0.0 < self.nms_iou <= 1.0:
            raise ValueError(f'nms_iou must be in (0, 1], got {self.nms_iou}')
        if not self.haar_scale_factor > 1.0:
            raise ValueError(f'haar_scale_factor must be > 1, got {self.haar_scale_factor}')
        for name in ('haar_min_neighbors', 'haar_min_size', 'haar_max_size', 'min_face_size',
                     'num_threads', 'detector_threads', 'detection_min_side'):
            if getattr(self, name) < 0:
                raise ValueError(f'{name} must be >= 0, got {getattr(self, name)}')
        if self.haar_max_size and self.haar_max_size < self.haar_min_size:
            raise ValueError(f'haar_max_size ({self.haar_max_size}) must be 0 or >= '
                             f'haar_min_size ({self.haar_min_size})')

    def detector_settings(self, backend: str) -> dict:
        """Return the create_face_detector settings for `backend` ('haar' or 'centerface')."""
        if backend == 'haar':
            settings = dict(scale_factor=self.haar_scale_factor,
                            min_neighbors=self.haar_min_neighbors, min_size=self.haar_min_size,
                            max_size=self.haar_max_size)
        else:
            settings = dict(score_threshold=self.face_score_threshold, nms_iou=self.nms_iou,
                            engine=self.inference_engine, num_threads=self.detector_threads,
                            refine_threshold=self.refine_threshold,
                            min_input_side=self.detection_min_side)
        if self.detection_scale:
            settings['scale'] = self.detection_scale
        return settings


def label_faces(probabilities: np.ndarray, sides, config: PipelineConfig):
    """Return (label, confidence) per face from [P(mask), P(no mask)] rows and face sides.

    P(mask) >= mask_threshold -> MASK else NO_MASK; then UNKNOWN when the chosen label's
    probability is under unknown_threshold, the face is smaller than min_face_size, or the
    probabilities are not finite.  Confidence = probability of the chosen label (for UNKNOWN
    the larger of the two, as MaskDetection.msg says; 0 when not finite).
    """
    labels = []
    for (p_mask, p_no_mask), side in zip(probabilities, sides):
        p_mask, p_no_mask = float(p_mask), float(p_no_mask)
        if not (math.isfinite(p_mask) and math.isfinite(p_no_mask)):
            labels.append((UNKNOWN, 0.0))
            continue
        label = MASK if p_mask >= config.mask_threshold else NO_MASK
        confidence = p_mask if label == MASK else p_no_mask
        if confidence < config.unknown_threshold or side < config.min_face_size:
            label, confidence = UNKNOWN, max(p_mask, p_no_mask)
        labels.append((label, confidence))
    return labels


class MaskDetectionPipeline:
    """BGR frame in, mask detections and per-stage timings out."""

    def __init__(self, config: Optional[PipelineConfig] = None,
                 face_detector: Optional[FaceDetector] = None, classifier=None):
        """Build the detector and load the classifier model (errors are ValueErrors).

        `face_detector` / `classifier` replace the ones the config describes (to share
        them, e.g. between a benchmark's runs).
        """
        self.config = config or PipelineConfig()
        self.config.validate()
        if face_detector is None:
            backend = resolve_detector_name(self.config.face_detector)
            face_detector = create_face_detector(self.config.face_detector,
                                                 **self.config.detector_settings(backend))
        self.face_detector = face_detector
        if classifier is None:
            from mask_detection.classifier import MaskClassifier
            classifier = MaskClassifier(self.config.model_path or None,
                                        device=self.config.device,
                                        num_threads=self.config.num_threads,
                                        engine=self.config.inference_engine,
                                        align_faces=self.config.align_faces)
        self.classifier = classifier

    def process(self, bgr: np.ndarray) -> PipelineResult:
        """Find the faces of `bgr` (HxWx3 uint8; grey and BGRA are converted) and label them.

        Raises FaceDetectorError (a ValueError) for frames that are not 8-bit images.
        """
        start = time.perf_counter()
        bgr = as_bgr_frame(bgr)
        faces = self.face_detector.detect(bgr)
        detected = time.perf_counter()
        if faces:
            probabilities = np.asarray(self.classifier.predict(bgr, faces), dtype=np.float64)
            if probabilities.shape != (len(faces), 2):
                raise FaceDetectorError(
                    f'the classifier returned shape {probabilities.shape} for {len(faces)} '
                    'faces, expected (N, 2)')
        else:
            probabilities = np.zeros((0, 2))
        classified = time.perf_counter()
        labels = label_faces(probabilities, [min(f.width, f.height) for f in faces],
                             self.config)
        detections = [
            Detection(face.x, face.y, face.width, face.height, label,
                      float(p[0]) if math.isfinite(p[0]) else 0.0, float(confidence),
                      float(face.score))
            for face, p, (label, confidence) in zip(faces, probabilities, labels)]
        end = time.perf_counter()
        return PipelineResult(detections, {
            'detect': (detected - start) * 1000.0,
            'classify': (classified - detected) * 1000.0,
            'total': (end - start) * 1000.0,
        })

    def annotate(self, bgr: np.ndarray, detections, timings: Optional[dict] = None):
        """Draw `detections` on `bgr` in place and return it; adds 'draw' ms to `timings`."""
        start = time.perf_counter()
        draw_detections(bgr, detections)
        if timings is not None:
            timings['draw'] = (time.perf_counter() - start) * 1000.0
        return bgr

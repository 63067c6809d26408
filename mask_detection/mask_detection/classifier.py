"""The mask classifier: the 50-35-2 network, its one preprocessing function, safe model files.

Class indices: ``MASK = 0``, ``NO_MASK = 1``.  A model file is a ``torch.save`` of a plain dict
(``format``, ``format_version``, ``state_dict``, ``metadata`` as a JSON string) that loads with
``torch.load(path, weights_only=True)``, so a file carrying a pickled object is refused, never run.
"""
import io
import json
import math
from pathlib import Path
import pickle
import re
import warnings
import zipfile

import cv2
import numpy as np
import torch
from torch import nn

from mask_detection import engines
from mask_detection.faces import roll_degrees

MASK = 0
NO_MASK = 1
CLASS_NAMES = ('mask', 'no_mask')

ARCHITECTURE_ID = 'masknet-conv-50-35-2'
FILE_FORMAT = 'mask_detection.classifier'
FILE_FORMAT_VERSION = 1

DEFAULT_INPUT_SIZE = 64
DEFAULT_CONV_CHANNELS = (16, 32, 64)
# Fraction of the face box's longer side added on every side of the square crop: keeps the chin,
# the mask's edges and some of the face outline, whichever detector drew the box.
DEFAULT_MARGIN = 0.15
# Normalisation applied to RGB values scaled to [0, 1]: (x - mean) / std per channel.
DEFAULT_MEAN = (0.5, 0.5, 0.5)
DEFAULT_STD = (0.5, 0.5, 0.5)
# Photometric normalisation of each face crop before scaling. 'none': the pixels as they are (every
# model file without the entry). 'clahe_luma': on the crop's luminance (Lab L, chroma kept) a
# stretch of its 1-99 % range to the full range, centred on mid-grey (gain capped), then
# contrast-limited adaptive histogram equalisation: a uniformly dark face against a bright wall
# shows its nostrils, lips and mouth again, while a plain black mask stays plain (the gain cap and
# CLAHE's clip limit keep flat regions from being amplified into texture).
PHOTOMETRIC_NORMALISATIONS = ('none', 'clahe_luma')
DEFAULT_PHOTOMETRIC = 'none'
CLAHE_CLIP_LIMIT = 2.0
CLAHE_TILES = (2, 2)
STRETCH_MAX_GAIN = 4.0

# Turning a face upright by its landmarks (MaskClassifier's align_faces): faces rolled less than
# MIN_ALIGN_ROLL degrees are cropped as they are (the network saw such rolls in training, and
# turning costs a resampling); faces under MIN_ALIGN_SIDE px are too, since their eyes are a few
# pixels apart and one pixel of landmark error tilts the line by 5 degrees or more; and so are
# readings beyond MAX_ALIGN_ROLL, more likely a wrong point than a head (CenterFace reads a head
# turned 45 degrees as about 30).  Held-out faces rolled 10 degrees or more: 91.0 % labelled right
# as they are, 96.4 % turned upright; found faces under 32 px: 6 more errors turned than not
# (MODEL_CARD.md, "Faces turned upright").  Only a face seen from the front is turned: the
# eyes of a frontal face are about 0.4 of its box apart, and once the head turns away by more
# than about 60 degrees (eyes under MIN_ALIGN_EYE_FRACTION of the box apart) the eye line's angle
# is no longer the head's roll: a face in profile read -70 to +21 degrees from frame to frame,
# and a half-profile masked face turned by its eye line was called no mask (track_eval clips).
MIN_ALIGN_ROLL = 3.0
MAX_ALIGN_ROLL = 45.0
MIN_ALIGN_SIDE = 32
MIN_ALIGN_EYE_FRACTION = 0.2


def upright_angle(points, side):
    """Return the angle (degrees) to turn a face by: landmarks ``points``, shorter side ``side``.

    ``points``: the detector's five (x, y) landmarks, left eye first (FaceBox.landmarks), or None.
    0 when there are none, the face is smaller than MIN_ALIGN_SIDE px, its eyes are less than
    MIN_ALIGN_EYE_FRACTION of ``side`` apart (a head turned away) or its roll is outside
    [MIN_ALIGN_ROLL, MAX_ALIGN_ROLL] in size; otherwise the roll (faces.roll_degrees).
    """
    if points is None or side < MIN_ALIGN_SIDE:
        return 0.0
    points = np.asarray(points, np.float64).reshape(5, 2)
    if np.hypot(*(points[1] - points[0])) < MIN_ALIGN_EYE_FRACTION * side:
        return 0.0
    roll = roll_degrees(points)
    if not MIN_ALIGN_ROLL <= abs(roll) <= MAX_ALIGN_ROLL:
        return 0.0
    return float(roll)


MODEL_FILE_NAME = 'mask_classifier.pt'


class ModelFileError(ValueError):
    """A model file is missing, unreadable, unsafe or does not hold a usable MaskNet."""

    def __init__(self, path, reason):
        super().__init__(f'mask classifier model file {path}: {reason}')
        self.path = Path(path)
        self.reason = reason


class MaskNet(nn.Module):
    """Convolution blocks (conv 3x3, batch norm, ReLU, max pool 2), then dense 50, 35, 2.

    The output is logits for (mask, no mask); softmax gives the probabilities.
    """

    def __init__(self, input_size=DEFAULT_INPUT_SIZE, conv_channels=DEFAULT_CONV_CHANNELS,
                 dropout=0.3):
        super().__init__()
        input_size = int(input_size)
        conv_channels = tuple(int(c) for c in conv_channels)
        if not conv_channels or any(c <= 0 for c in conv_channels):
            raise ValueError(f'conv_channels must be positive integers, got {conv_channels}')
        feature_size = input_size >> len(conv_channels)
        if feature_size < 1 or input_size % (1 << len(conv_channels)):
            raise ValueError(f'input_size {input_size} must be a multiple of '
                             f'{1 << len(conv_channels)} for {len(conv_channels)} conv blocks')
        self.input_size = input_size
        self.conv_channels = conv_channels
        layers = []
        in_channels = 3
        for out_channels in conv_channels:
            layers += [nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
                       nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True), nn.MaxPool2d(2)]
            in_channels = out_channels
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(
            nn.Flatten(),
            nn.Dropout(dropout),
            nn.Linear(in_channels * feature_size * feature_size, 50), nn.ReLU(inplace=True),
            nn.Linear(50, 35), nn.ReLU(inplace=True),
            nn.Linear(35, 2))

    def forward(self, x):
        return self.head(self.features(x))

    def architecture(self):
        """Return the metadata entries that rebuild this network."""
        return {'architecture': ARCHITECTURE_ID, 'input_size': self.input_size,
                'conv_channels': list(self.conv_channels)}


def _box_xywh(box):
    """Return (x, y, width, height) of a FaceBox-like object or a 4-sequence."""
    if hasattr(box, 'width'):
        values = (box.x, box.y, box.width, box.height)
    else:
        values = tuple(box)
        if len(values) != 4:
            raise ValueError(f'a face box needs (x, y, width, height), got {box!r}')
    x, y, w, h = (float(v) for v in values)
    if not all(math.isfinite(v) for v in (x, y, w, h)) or w <= 0 or h <= 0:
        raise ValueError(f'a face box needs a finite position and a positive size, got {box!r}')
    return x, y, w, h


def as_bgr_image(image):
    """Return a uint8 HxWx3 BGR view or copy of ``image`` (grey and BGRA are converted).

    Raises ValueError for anything else (wrong dtype, empty, wrong number of channels).
    """
    if not isinstance(image, np.ndarray):
        raise ValueError(f'expected a numpy image, got {type(image).__name__}')
    if image.dtype != np.uint8:
        raise ValueError(f'expected a uint8 image, got dtype {image.dtype}')
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if image.ndim == 2:
        image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    elif image.ndim == 3 and image.shape[2] == 4:
        image = cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    elif image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f'expected a BGR image of shape (H, W, 3), got shape {image.shape}')
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise ValueError(f'empty image of shape {image.shape}')
    return image


def crop_square(bgr, box, margin=DEFAULT_MARGIN, roll=0.0):
    """Return the square BGR crop around ``box`` (plus margin); parts outside the image are black.

    The square has side max(width, height) * (1 + 2 * margin) and the box's centre, so faces keep
    their aspect ratio whatever the detector's box shape.  ``roll`` (degrees, the angle of the
    line from the left to the right eye) turns the square about the box's centre by that angle,
    so that the face in the crop is upright; 0 cuts the pixels as they are.
    """
    x, y, w, h = _box_xywh(box)
    side = max(w, h) * (1.0 + 2.0 * margin)
    # floor(v + 0.5), not round(): round-half-even would make the crop depend on where the
    # image was cut (training crops regions first), breaking training/inference parity.
    left = math.floor(x + w / 2.0 - side / 2.0 + 0.5)
    top = math.floor(y + h / 2.0 - side / 2.0 + 0.5)
    size = max(1, int(round(side)))
    rows, cols = bgr.shape[:2]
    if roll:
        roll = float(roll)
        if not math.isfinite(roll):
            raise ValueError(f'roll must be a finite angle in degrees, got {roll!r}')
        if left + size <= 0 or top + size <= 0 or left >= cols or top >= rows:
            raise ValueError(f'face box {box!r} lies outside the {cols}x{rows} image')
        # The image turned by ``roll`` about the box's centre (eyes level), then the same square
        # cut from it: one resampling of just the square's pixels.
        turn = cv2.getRotationMatrix2D((x + w / 2.0, y + h / 2.0), roll, 1.0)
        turn[:, 2] -= (left, top)
        return cv2.warpAffine(bgr, turn, (size, size), flags=cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0))
    x0, y0 = max(left, 0), max(top, 0)
    x1, y1 = min(left + size, cols), min(top + size, rows)
    if x0 >= x1 or y0 >= y1:
        raise ValueError(f'face box {box!r} lies outside the {cols}x{rows} image')
    crop = bgr[y0:y1, x0:x1]
    if (x0, y0, x1, y1) != (left, top, left + size, top + size):
        crop = cv2.copyMakeBorder(crop, y0 - top, top + size - y1, x0 - left, left + size - x1,
                                  cv2.BORDER_CONSTANT, value=(0, 0, 0))
    return crop


def normalise_photometry(bgr, method):
    """Return the uint8 BGR crop with ``method`` (one of PHOTOMETRIC_NORMALISATIONS) applied."""
    if method == 'none':
        return bgr
    if method == 'clahe_luma':
        lab = cv2.cvtColor(bgr, cv2.COLOR_BGR2LAB)
        luma = lab[:, :, 0].astype(np.float32)
        low, high = np.percentile(luma, (1.0, 99.0))
        # Stretch the crop's luminance range first (a dim crop uses a fraction of it), with the
        # gain capped so that sensor noise on a plain patch is not blown up into texture.
        gain = min(STRETCH_MAX_GAIN, 255.0 / max(float(high - low), 1.0))
        luma = np.clip((luma - 0.5 * (low + high)) * gain + 127.5, 0.0, 255.0)
        clahe = cv2.createCLAHE(clipLimit=CLAHE_CLIP_LIMIT, tileGridSize=CLAHE_TILES)
        lab[:, :, 0] = clahe.apply(luma.round().astype(np.uint8))
        return cv2.cvtColor(lab, cv2.COLOR_LAB2BGR)
    raise ValueError(f'photometric normalisation {method!r} is not one of '
                     f'{PHOTOMETRIC_NORMALISATIONS}')


def preprocess_face(bgr, box, input_size=DEFAULT_INPUT_SIZE, margin=DEFAULT_MARGIN,
                    mean=DEFAULT_MEAN, std=DEFAULT_STD, photometric=DEFAULT_PHOTOMETRIC,
                    roll=0.0):
    """Return the network input for one face: float32 (3, input_size, input_size).

    THE preprocessing used by training and inference alike: square crop of the box with a margin
    (black outside the image; turned upright by ``roll`` degrees, see crop_square), BGR->RGB,
    resize (area when shrinking, linear when enlarging), ``photometric`` normalisation of the
    resized crop (see PHOTOMETRIC_NORMALISATIONS), scale to [0, 1], subtract ``mean`` and divide
    by ``std`` per channel.
    """
    if photometric not in PHOTOMETRIC_NORMALISATIONS:
        raise ValueError(f'photometric normalisation {photometric!r} is not one of '
                         f'{PHOTOMETRIC_NORMALISATIONS}')
    bgr = as_bgr_image(bgr)
    crop = crop_square(bgr, box, margin, roll)
    interpolation = cv2.INTER_AREA if crop.shape[0] > input_size else cv2.INTER_LINEAR
    resized = cv2.resize(crop, (int(input_size), int(input_size)), interpolation=interpolation)
    # After the resize: the network's 48 px view is what gets equalised, at a fixed cost per face.
    resized = normalise_photometry(resized, photometric)
    rgb = cv2.cvtColor(resized, cv2.COLOR_BGR2RGB).astype(np.float32) * np.float32(1.0 / 255.0)
    rgb -= np.asarray(mean, dtype=np.float32)
    rgb /= np.asarray(std, dtype=np.float32)
    return np.ascontiguousarray(rgb.transpose(2, 0, 1))


def preprocessing_settings(metadata):
    """Return the keyword arguments of preprocess_face recorded in a model's metadata."""
    return {'input_size': int(metadata['input_size']),
            'margin': float(metadata.get('margin', DEFAULT_MARGIN)),
            'mean': tuple(float(v) for v in metadata.get('mean', DEFAULT_MEAN)),
            'std': tuple(float(v) for v in metadata.get('std', DEFAULT_STD)),
            # Files written before the entry existed were trained on unnormalised crops.
            'photometric': _photometric_setting(metadata)}


def _photometric_setting(metadata):
    method = metadata.get('photometric', DEFAULT_PHOTOMETRIC)
    if method not in PHOTOMETRIC_NORMALISATIONS:
        raise ValueError(f'photometric normalisation {method!r} is not one of '
                         f'{PHOTOMETRIC_NORMALISATIONS}')
    return method


def calibration_temperature(metadata):
    """Return the softmax temperature recorded in a model's metadata (1.0 when uncalibrated).

    Probabilities are softmax(logits / T): T is fitted on validation faces (temperature
    scaling), so that a confidence of 0.8 is right about 80 % of the time.
    """
    calibration = metadata.get('calibration') or {}
    temperature = float(calibration.get('temperature', 1.0))
    if not math.isfinite(temperature) or temperature <= 0:
        raise ValueError(f'calibration temperature must be a positive number, got {temperature}')
    return temperature


def save_model_file(path, model, metadata=None):
    """Write ``model``'s weights and ``metadata`` (JSON-serialisable dict) to ``path``.

    The architecture entries (id, input size, conv channels) and the class order are filled in
    from the model; the preprocessing entries default to this module's defaults.
    """
    meta = dict(metadata or {})
    meta.update(model.architecture())
    meta.setdefault('classes', list(CLASS_NAMES))
    meta.setdefault('margin', DEFAULT_MARGIN)
    meta.setdefault('mean', list(DEFAULT_MEAN))
    meta.setdefault('std', list(DEFAULT_STD))
    meta.setdefault('photometric', DEFAULT_PHOTOMETRIC)
    state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    payload = {'format': FILE_FORMAT, 'format_version': FILE_FORMAT_VERSION,
               'metadata': json.dumps(meta, sort_keys=True), 'state_dict': state}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + '.tmp')
    torch.save(payload, tmp)
    tmp.replace(path)
    return path


def _read_payload(path):
    if not path.is_file():
        raise ModelFileError(path, 'file not found' if not path.exists() else 'not a file')
    if path.stat().st_size == 0:
        raise ModelFileError(path, 'file is empty')
    if not zipfile.is_zipfile(path):
        # torch.save writes a zip archive; anything else (truncated, text, legacy raw pickle) is
        # refused without being unpickled.
        raise ModelFileError(path, 'not a readable model file (truncated or corrupt: not a '
                             'torch.save zip archive)')
    try:
        return torch.load(path, map_location='cpu', weights_only=True)
    except pickle.UnpicklingError as error:
        # weights_only refuses every global outside torch's tensor allowlist: nothing ran.
        found = re.search(r'Unsupported (global|operand)[^.\n]*(\.\w+)*', str(error))
        raise ModelFileError(path, 'refused: the file holds pickled objects other than plain '
                             'tensors and containers (unsafe payload'
                             + (f': {found.group(0)}' if found else '') + ')') from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError) as error:
        raise ModelFileError(path, f'not a readable model file (truncated or corrupt: {error})'
                             ) from None


def load_model_file(path):
    """Load a model file safely; return ``(MaskNet in eval mode, metadata dict)``.

    Raises ModelFileError naming the file and the reason for a missing, empty, truncated,
    unsafe (pickle payload), wrong-format, wrong-architecture or wrong-shape file, and for
    weights that are not finite or produce non-finite outputs.
    """
    path = Path(path)
    payload = _read_payload(path)
    if not isinstance(payload, dict) or payload.get('format') != FILE_FORMAT:
        raise ModelFileError(path, f'not a {FILE_FORMAT} file (no matching "format" entry)')
    if payload.get('format_version') != FILE_FORMAT_VERSION:
        raise ModelFileError(path, f'format version {payload.get("format_version")!r} is not '
                             f'supported (expected {FILE_FORMAT_VERSION})')
    try:
        metadata = json.loads(payload['metadata'])
    except (KeyError, TypeError, ValueError) as error:
        raise ModelFileError(path, f'metadata missing or not JSON ({error})') from None
    if not isinstance(metadata, dict):
        raise ModelFileError(path, 'metadata is not a JSON object')
    if metadata.get('architecture') != ARCHITECTURE_ID:
        raise ModelFileError(path, f'architecture {metadata.get("architecture")!r} is not '
                             f'{ARCHITECTURE_ID!r}')
    if list(metadata.get('classes', CLASS_NAMES)) != list(CLASS_NAMES):
        raise ModelFileError(path, f'class order {metadata.get("classes")!r} is not '
                             f'{list(CLASS_NAMES)!r}')
    try:
        model = MaskNet(metadata['input_size'], metadata['conv_channels'])
        preprocessing_settings(metadata)
        calibration_temperature(metadata)
    except (KeyError, TypeError, ValueError, AttributeError) as error:
        raise ModelFileError(path, f'invalid architecture or calibration metadata '
                             f'({error!r})') from None
    state = payload.get('state_dict')
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor)
                                              for v in state.values()):
        raise ModelFileError(path, 'no state_dict of tensors')
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as error:
        reason = ' '.join(str(error).split())
        raise ModelFileError(path, f'weights do not fit the network (wrong shape or names: '
                             f'{reason[:400]})') from None
    if not all(torch.isfinite(v).all() for v in state.values() if v.is_floating_point()):
        raise ModelFileError(path, 'weights contain NaN or infinite values')
    model.eval()
    probe = torch.linspace(-1.0, 1.0, 3 * model.input_size ** 2).reshape(
        1, 3, model.input_size, model.input_size)
    with torch.inference_mode():
        if not torch.isfinite(model(probe)).all():
            raise ModelFileError(path, 'the network produces NaN or infinite outputs')
    return model, metadata


def default_model_path():
    """Return the shipped model's path: the source tree's models/ or the installed share/ copy.

    Returns the source-tree path (which may not exist) when neither is found, so that loading it
    raises a ModelFileError naming where the file was expected.
    """
    source_tree = Path(__file__).resolve().parent.parent / 'models' / MODEL_FILE_NAME
    if source_tree.is_file():
        return source_tree
    try:
        from ament_index_python.packages import get_package_share_directory
        from ament_index_python.packages import PackageNotFoundError
    except ImportError:
        return source_tree
    try:
        share = Path(get_package_share_directory('mask_detection'))
        installed = share / 'models' / MODEL_FILE_NAME
    except (PackageNotFoundError, LookupError, ValueError, OSError):
        # OSError: ament_index_python without AMENT_PREFIX_PATH (no ROS environment).
        return source_tree
    return installed if installed.is_file() else source_tree


def resolve_device(device):
    """Return a torch.device for 'cpu', 'cuda' or 'cuda:N'; ValueError when not available."""
    name = str(device).strip().lower() if device is not None else 'cpu'
    if name in ('', 'cpu'):
        return torch.device('cpu')
    if name == 'cuda' or name.startswith('cuda:'):
        if not torch.cuda.is_available():
            raise ValueError(f'device {device!r} requested but CUDA is not available '
                             f'(torch {torch.__version__}); use device "cpu"')
        resolved = torch.device(name)
        if resolved.index is not None and resolved.index >= torch.cuda.device_count():
            raise ValueError(f'device {device!r} requested but only '
                             f'{torch.cuda.device_count()} CUDA device(s) exist')
        return resolved
    raise ValueError(f'unknown device {device!r}: use "cpu", "cuda" or "cuda:N"')


def export_onnx(model, path=None):
    """Return the ONNX bytes of a MaskNet (batch dimension dynamic), computed in memory.

    The export derives from the loaded model file every time, so it can never be stale
    whatever the shipped .pt holds.  ``path`` only names the model file in errors.
    """
    size = model.input_size
    buffer = io.BytesIO()
    try:
        with warnings.catch_warnings():
            # The TorchScript-based exporter warns that it is deprecated; it needs no extra
            # package (the dynamo exporter needs onnxscript) and handles this plain network.
            warnings.simplefilter('ignore')
            torch.onnx.export(model, torch.zeros(1, 3, size, size), buffer,
                              input_names=['faces'], output_names=['logits'],
                              dynamic_axes={'faces': {0: 'batch'}, 'logits': {0: 'batch'}},
                              opset_version=17, dynamo=False)
    except Exception as error:  # noqa: B902 - the exporter raises many types
        raise ModelFileError(path or '(in memory)', f'cannot export the network to ONNX '
                             f'({" ".join(str(error).split())[:300]})') from None
    return buffer.getvalue()


def resolve_classifier_engine(engine, device):
    """Return 'onnxruntime' or 'torch' for an inference_engine name and a torch device.

    'auto' and 'onnxruntime' run the classifier in ONNX Runtime on the CPU (1.5-5x faster than
    torch for 1-8 faces; benchmarks.benchmark classifier); 'opencv' (the engines that need no
    onnxruntime) and CUDA devices run it in torch.
    """
    engine = engines.resolve_engine(engine)     # InferenceEngineError for bad names
    return 'onnxruntime' if engine == 'onnxruntime' and device.type == 'cpu' else 'torch'


class MaskClassifier:
    """Classify face crops as mask / no mask with a MaskNet model file."""

    def __init__(self, model_path=None, device='cpu', num_threads=0, engine='auto',
                 align_faces=True):
        """Load ``model_path`` (None: the shipped model) for ``device`` and ``engine``.

        ``align_faces``: boxes that carry the detector's landmarks (FaceBox.landmarks) are
        cropped upright when their head is rolled (see upright_angle).
        """
        self.align_faces = bool(align_faces)
        if num_threads is not None and int(num_threads) < 0:
            raise ValueError(f'num_threads must be >= 0 (0 keeps torch default), '
                             f'got {num_threads}')
        self.device = resolve_device(device)
        self.engine = resolve_classifier_engine(engine, self.device)
        if num_threads and int(num_threads) > 0:
            # Process-wide torch setting; only touched when asked for.
            torch.set_num_threads(int(num_threads))
        self.model_path = Path(model_path) if model_path else default_model_path()
        model, self.metadata = load_model_file(self.model_path)
        model = model.to(self.device).eval()
        self._session = None
        if self.engine == 'onnxruntime':
            try:
                self._session = engines.onnxruntime_session(
                    export_onnx(model, self.model_path), int(num_threads or 0),
                    'exported network')
            except engines.InferenceEngineError as error:
                raise ModelFileError(self.model_path, str(error)) from None
        elif self.device.type == 'cpu':
            # channels_last convolutions take about half the CPU time of NCHW on batches of
            # faces, with the same outputs (python -m benchmarks.benchmark classifier).
            model = model.to(memory_format=torch.channels_last)
        self.model = model
        self.preprocessing = preprocessing_settings(self.metadata)
        self.input_size = self.preprocessing['input_size']
        self.temperature = calibration_temperature(self.metadata)

    def preprocess(self, bgr, boxes):
        """Return the float32 batch (N, 3, S, S) for ``boxes`` in ``bgr``."""
        bgr = as_bgr_image(bgr)
        size = self.input_size
        batch = np.empty((len(boxes), 3, size, size), dtype=np.float32)
        for i, box in enumerate(boxes):
            batch[i] = preprocess_face(bgr, box, roll=self.roll_of(box), **self.preprocessing)
        return batch

    def roll_of(self, box):
        """Return the angle (degrees) ``box`` is cropped at: upright_angle, or 0 (align_faces)."""
        if not (self.align_faces and hasattr(box, 'landmarks')):
            return 0.0
        return upright_angle(box.landmarks, min(box.width, box.height))

    def predict_batch(self, batch):
        """Return softmax probabilities (N, 2) for a preprocessed float32 batch."""
        if len(batch) == 0:
            return np.zeros((0, 2), dtype=np.float32)
        with torch.inference_mode():
            logits = self._logits(batch)
            return torch.softmax(logits.float() / self.temperature, dim=1).cpu().numpy()

    def raw_logits(self, batch):
        """Return the uncalibrated logits (N, 2) of a preprocessed batch, as predict uses them."""
        with torch.inference_mode():
            return self._logits(batch).float().cpu().numpy()

    def _logits(self, batch):
        # Both engines need contiguous float32 (no copy when the batch already is).
        batch = np.ascontiguousarray(batch, dtype=np.float32)
        if self._session is not None:
            return torch.from_numpy(self._session.run(None, {'faces': batch})[0])
        return self.model(torch.from_numpy(batch).to(self.device))

    def predict(self, bgr, boxes):
        """Return [P(mask), P(no mask)] per face box, shape (N, 2), in one batched forward."""
        boxes = list(boxes)
        if not boxes:
            as_bgr_image(bgr)
            return np.zeros((0, 2), dtype=np.float32)
        return self.predict_batch(self.preprocess(bgr, boxes))

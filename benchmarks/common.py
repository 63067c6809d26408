"""Helpers shared by the benchmarks: frames, sizes, the model file, cores and machine load."""
import argparse
import os
from pathlib import Path
import sys
import tempfile

import cv2
import numpy as np
import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT / 'mask_detection') not in sys.path:
    sys.path.insert(0, str(REPO_ROOT / 'mask_detection'))

from mask_detection import classifier as classifier_module  # noqa: E402

DEFAULT_DATA = REPO_ROOT.parent / 'shared' / 'data' / 'facemask-detection-dev'
IMAGE_SUFFIXES = ('.jpg', '.jpeg', '.png', '.bmp')


def parse_size(text):
    """Return (width, height) from 'WxH'."""
    try:
        width, height = (int(v) for v in text.lower().split('x'))
    except ValueError:
        raise argparse.ArgumentTypeError(f'size must look like 640x480, got {text!r}') from None
    if width < 32 or height < 32:
        raise argparse.ArgumentTypeError(f'size must be at least 32x32, got {text!r}')
    return width, height


def image_folder(text):
    """Argparse type: --images must be an existing folder (checked before any work starts)."""
    if not Path(text).is_dir():
        what = 'is not a folder' if Path(text).exists() else 'does not exist'
        raise argparse.ArgumentTypeError(f'image folder {text} {what}')
    return text


def load_frames(images=None, size=(640, 480), count=40):
    """Return (list of BGR frames of ``size``, description of their source).

    Frames are the first ``count`` images of ``images`` (a folder, or its ``images/`` folder),
    by default the detection dev set, resized to ``size``; when no such folder exists, the
    photos bundled with scikit-image (astronaut, and flipped / shifted copies of it).
    """
    width, height = size
    folder = Path(images) if images else DEFAULT_DATA
    if (folder / 'images').is_dir():
        folder = folder / 'images'
    if images and not folder.is_dir():
        raise FileNotFoundError(f'image folder {folder} does not exist')
    frames = []
    if folder.is_dir():
        paths = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        for path in paths[:count]:
            image = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if image is None:
                raise ValueError(f'cannot read image {path}')
            frames.append(_resize(image, size))
        if frames:
            return frames, f'{len(frames)} images of {folder}, resized to {width}x{height}'
        if images:
            raise ValueError(f'no images ({", ".join(IMAGE_SUFFIXES)}) in {folder}')
    return _builtin_frames(size, count), (
        f'scikit-image astronaut photo variants at {width}x{height} ({folder} not found)')


def _resize(image, size):
    interpolation = cv2.INTER_AREA if image.shape[1] > size[0] else cv2.INTER_LINEAR
    return cv2.resize(image, size, interpolation=interpolation)


def _builtin_frames(size, count):
    import skimage.data
    base = cv2.cvtColor(skimage.data.astronaut(), cv2.COLOR_RGB2BGR)
    variants = []
    for i in range(max(1, min(count, 8))):
        image = base[:, ::-1] if i % 2 else base
        shift = (i // 2) * 40
        image = np.roll(image, shift, axis=1)
        variants.append(_resize(np.ascontiguousarray(image), size))
    return variants


def resolve_model_path(model_path=None):
    """Return (model file path, note): the given or shipped model, else untrained weights.

    Timing does not depend on the weights; without a trained model file the benchmark saves a
    freshly initialised MaskNet to a temporary file and says so.
    """
    if model_path:
        return Path(model_path), ''
    shipped = classifier_module.default_model_path()
    if shipped.is_file():
        return shipped, ''
    path = Path(tempfile.mkdtemp(prefix='mask_benchmark_')) / 'untrained.pt'
    torch.manual_seed(0)
    classifier_module.save_model_file(path, classifier_module.MaskNet().eval(),
                                      {'note': 'untrained, benchmark timing only'})
    return path, (f'no trained model at {shipped}: timing with an untrained MaskNet of the same '
                  'architecture (same cost; labels meaningless)')


def usable_cores():
    """Return the number of CPU cores this process may run on (taskset / cgroup aware)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def load_average():
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return []

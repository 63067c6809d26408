"""Classifier accuracy on the validation split under image perturbations and per face subset.

    scripts/in_env.sh python -m training.robustness [--model FILE] --data DIR [--data DIR ...] \
        [--seed 0 --val-fraction 0.2] --json OUT

Rebuilds the training split (same folders, seed and fraction as training.train), then measures
accuracy on the validation faces: unchanged, darkened (low light), darkened with sensor noise,
blurred, JPEG quality 15, and, for the masked faces, by the brightness of the lower face half
(a proxy for dark masks).  Numbers only; nothing is tuned on them.
"""
import argparse
import json
from pathlib import Path
import sys

import cv2
import numpy as np
import torch

from mask_detection import classifier
from mask_detection.classifier import MASK
from training import data as data_lib
from training.metrics import classification_metrics


def _darken(image, rng):
    return np.clip(image.astype(np.float32) * 0.3, 0, 255).astype(np.uint8)


def _dark_noisy(image, rng):
    dark = image.astype(np.float32) * 0.3 + rng.normal(0.0, 6.0, image.shape)
    return np.clip(dark, 0, 255).astype(np.uint8)


def _blur(image, rng):
    return cv2.GaussianBlur(image, (0, 0), 2.0)


def _jpeg(image, rng):
    ok, encoded = cv2.imencode('.jpg', image, [cv2.IMWRITE_JPEG_QUALITY, 15])
    return cv2.imdecode(encoded, cv2.IMREAD_COLOR)


PERTURBATIONS = {'none': None, 'dark x0.3': _darken, 'dark x0.3 + noise': _dark_noisy,
                 'gaussian blur sigma 2': _blur, 'jpeg quality 15': _jpeg}


def evaluate_robustness(model_path, folders, seed=0, val_fraction=0.2, face_detector='centerface',
                        detector_scale=1.0, progress=True):
    model, metadata = classifier.load_model_file(model_path)
    settings = classifier.preprocessing_settings(metadata)
    samples, _ = data_lib.load_samples(folders, face_detector, progress=progress,
                                       detector_settings={'scale': detector_scale})
    _, val = data_lib.split_samples(samples, val_fraction, seed)
    labels = np.array([s.label for s in val])
    rng = np.random.default_rng(seed)
    inputs = {name: np.empty((len(val), 3, settings['input_size'], settings['input_size']),
                             np.float32) for name in PERTURBATIONS}
    lower_brightness = np.zeros(len(val))
    for index, sample in enumerate(val):
        image = data_lib.read_image(sample.image_path)
        crop = classifier.crop_square(image, sample.box, 0.0)
        lower_brightness[index] = float(cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY)[
            crop.shape[0] // 2:].mean())
        for name, perturb in PERTURBATIONS.items():
            changed = image if perturb is None else perturb(image, rng)
            inputs[name][index] = classifier.preprocess_face(changed, sample.box, **settings)
    result = {'model': str(model_path), 'n_validation_faces': len(val), 'perturbations': {}}
    predictions = {}
    with torch.inference_mode():
        for name, batch in inputs.items():
            predictions[name] = model(torch.from_numpy(batch)).argmax(1).numpy()
            metrics = classification_metrics(labels, predictions[name])
            result['perturbations'][name] = {
                'accuracy': metrics['accuracy'],
                'recall': {k: v['recall'] for k, v in metrics['per_class'].items()}}
    masked = labels == MASK
    bins = {'lower face mean grey < 60 (dark)': lower_brightness < 60,
            '60-120': (lower_brightness >= 60) & (lower_brightness < 120),
            '>= 120 (light)': lower_brightness >= 120}
    result['masked_faces_by_lower_half_brightness'] = {
        name: {'n': int((masked & selected).sum()),
               'mask_recall': float((predictions['none'][masked & selected] == MASK).mean())
               if (masked & selected).any() else None}
        for name, selected in bins.items()}
    kinds = sorted({s.kind for s in val})
    result['by_kind'] = {}
    for kind in kinds:
        selected = np.array([s.kind == kind for s in val])
        result['by_kind'][kind] = classification_metrics(labels[selected],
                                                         predictions['none'][selected])['accuracy']
    return result


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--model', default=None, help='default: the shipped model')
    parser.add_argument('--data', action='append', required=True, metavar='DIR')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--val-fraction', type=float, default=0.2)
    parser.add_argument('--json', required=True, metavar='OUT')
    parser.add_argument('--no-progress', action='store_true')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    model = args.model or classifier.default_model_path()
    try:
        result = evaluate_robustness(model, args.data, args.seed, args.val_fraction,
                                     progress=not args.no_progress)
    except (data_lib.DataError, classifier.ModelFileError) as error:
        print(f'error: {error}', file=sys.stderr)
        return 2
    for name, entry in result['perturbations'].items():
        print(f'{name:<24} accuracy {entry["accuracy"]:.4f}  recall {entry["recall"]}')
    for name, entry in result['masked_faces_by_lower_half_brightness'].items():
        print(f'masked, {name:<34} n={entry["n"]:<4} mask recall {entry["mask_recall"]}')
    Path(args.json).write_text(json.dumps(result, indent=1))
    print(f'wrote {args.json}')
    return 0


if __name__ == '__main__':
    sys.exit(main())

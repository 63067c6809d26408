"""Tests of temperature scaling: fitted on real faces, stored safely, applied at inference."""
import json

from conftest import shared_dataset
import cv2
import numpy as np
import pytest
import skimage.data
import torch

from mask_detection import classifier
from mask_detection.classifier import MaskClassifier, MaskNet, ModelFileError
from training import calibration, data as data_lib


def _numpy_nll(logits, labels, temperature):
    """Negative log-likelihood computed here with numpy, not with the code under test."""
    z = np.asarray(logits, np.float64) / temperature
    z = z - z.max(axis=1, keepdims=True)
    log_p = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    return float(-log_p[np.arange(len(labels)), labels].mean())


def _shipped_logits(items):
    model = MaskClassifier(num_threads=1)
    batch = np.concatenate([model.preprocess(image, [box]) for image, box in items])
    with torch.inference_mode():
        return model.model(torch.from_numpy(batch)).numpy()


def test_fit_temperature_finds_the_nll_minimum():
    rng = np.random.default_rng(2)
    logits = rng.normal(0, 4, (600, 2))
    labels = logits.argmax(1)
    flipped = rng.random(600) < 0.15          # 15 % of the labels disagree with the logits
    labels[flipped] = 1 - labels[flipped]
    temperature = calibration.fit_temperature(logits, labels)
    grid = np.exp(np.linspace(np.log(0.05), np.log(20), 2000))
    best = grid[np.argmin([_numpy_nll(logits, labels, t) for t in grid])]
    assert 0.05 < best < 20
    assert temperature == pytest.approx(best, rel=0.01)
    assert calibration.nll(logits, labels, temperature) == pytest.approx(
        _numpy_nll(logits, labels, temperature), rel=1e-9)


def test_fit_temperature_recovers_a_known_temperature():
    rng = np.random.default_rng(0)
    true_logits = rng.normal(0, 3, (4000, 2))
    p = np.exp(true_logits) / np.exp(true_logits).sum(1, keepdims=True)
    labels = (rng.random(4000) < p[:, 1]).astype(np.int64)
    # An overconfident model: its logits are the true ones times 2.5.
    assert calibration.fit_temperature(true_logits * 2.5, labels) == pytest.approx(2.5, rel=0.1)


def test_temperature_reduces_nll_on_a_real_data_set(tmp_path):
    folder = shared_dataset('real-world-masks/zulhamf11_field_photos')
    samples, _ = data_lib.load_samples([folder], 'centerface', cache_dir=tmp_path,
                                       progress=False, detector_settings={'scale': 1.0})
    samples = samples[::3]
    items = [(data_lib.read_image(s.image_path), s.box) for s in samples]
    labels = np.array([s.label for s in samples])
    logits = _shipped_logits(items)
    # Fitted on half of the faces, judged on the other half.
    temperature = calibration.fit_temperature(logits[::2], labels[::2])
    assert _numpy_nll(logits[1::2], labels[1::2], temperature) < _numpy_nll(
        logits[1::2], labels[1::2], 1.0)


def test_reliability_bins_count_every_face():
    rng = np.random.default_rng(1)
    logits = rng.normal(0, 2, (500, 2))
    labels = rng.integers(0, 2, 500)
    ece, table = calibration.reliability(logits, labels)
    assert sum(entry['n'] for entry in table) == 500
    assert 0.0 <= ece <= 0.5


def test_temperature_saved_loaded_safely_and_applied(tmp_path):
    astronaut_face = (170, 40, 100, 120)
    torch.manual_seed(0)
    model = MaskNet(32, (4, 8)).eval()
    path = tmp_path / 'calibrated.pt'
    classifier.save_model_file(path, model, {'calibration': {'temperature': 2.5}})
    payload = torch.load(path, weights_only=True)   # plain values only: no pickled objects
    assert json.loads(payload['metadata'])['calibration']['temperature'] == 2.5
    loaded = MaskClassifier(path)
    assert loaded.temperature == 2.5
    image = cv2.cvtColor(skimage.data.astronaut(), cv2.COLOR_RGB2BGR)
    batch = loaded.preprocess(image, [astronaut_face])
    with torch.inference_mode():
        logits = model(torch.from_numpy(batch)).numpy()[0].astype(np.float64)
    expected = np.exp(logits / 2.5) / np.exp(logits / 2.5).sum()
    assert loaded.predict(image, [astronaut_face])[0] == pytest.approx(expected, abs=1e-5)
    classifier.save_model_file(path, model)
    assert MaskClassifier(path).temperature == 1.0
    for bad in (-1.0, 0.0, 'hot'):
        classifier.save_model_file(path, model, {'calibration': {'temperature': bad}})
        with pytest.raises(ModelFileError, match='calibration'):
            classifier.load_model_file(path)

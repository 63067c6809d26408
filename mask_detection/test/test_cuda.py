"""The classifier on a CUDA device gives what it gives on the CPU (skipped without CUDA)."""
import cv2
import numpy as np
import pytest
import skimage.data
import torch

from mask_detection.classifier import MaskClassifier, MaskNet, save_model_file

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(),
                                reason='no CUDA device on this machine (the CPU is the default)')


@pytest.fixture(scope='module')
def model_file(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp('cuda') / 'model.pt'
    save_model_file(path, MaskNet().eval(), {'note': 'random weights for the CUDA parity test'})
    return path


def _frame():
    return cv2.cvtColor(skimage.data.astronaut(), cv2.COLOR_RGB2BGR)


def test_cuda_and_cpu_predictions_agree(model_file):
    frame = _frame()
    boxes = [(170, 70, 70, 90), (0, 0, 40, 40), (300, 200, 150, 150), (500, 500, 12, 12)]
    cpu = MaskClassifier(model_file, device='cpu').predict(frame, boxes)
    gpu_classifier = MaskClassifier(model_file, device='cuda')
    assert gpu_classifier.device.type == 'cuda'
    gpu = gpu_classifier.predict(frame, boxes)
    assert gpu.shape == cpu.shape == (4, 2)
    np.testing.assert_allclose(gpu, cpu, atol=1e-4)
    np.testing.assert_allclose(gpu.sum(axis=1), 1.0, atol=1e-5)


def test_cuda_handles_a_frame_without_faces(model_file):
    probabilities = MaskClassifier(model_file, device='cuda').predict(_frame(), [])
    assert probabilities.shape == (0, 2)

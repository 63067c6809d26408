"""Train the mask classifier on ImageFolder and VOC folders; write the model file and a report.

    scripts/in_env.sh python -m training.train --data ../shared/data/facemask-classification \
        --data ../shared/data/facemask-detection-dev --out mask_detection/models/mask_classifier.pt

Writes the model file (see mask_detection.classifier), and in --report-dir (default
training/runs/<model name>/): metrics.json, split.json, curves.png, confusion.png.
"""
import argparse
import copy
from dataclasses import asdict
import json
from pathlib import Path
import sys
import time

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, WeightedRandomSampler

from mask_detection import classifier
from mask_detection.classifier import MASK, MaskNet, preprocess_face
from training import calibration
from training import conditions
from training import data as data_lib
from training import heldout
from training import synthetic
from training.metrics import classification_metrics, plot_confusion, plot_curves

SIZE_BUCKETS = (('<24', 0, 24), ('24-48', 24, 48), ('>=48', 48, float('inf')))


class AugmentedFaces(Dataset):
    """Training faces: cached context regions, augmented, then THE preprocess_face."""

    def __init__(self, regions, preprocessing, augment, seed=0):
        self.regions = regions
        self.preprocessing = preprocessing
        self.augment = augment
        self.seed = seed
        self._rng = None

    def __len__(self):
        return len(self.regions)

    def _generator(self):
        if self._rng is None:
            info = torch.utils.data.get_worker_info()
            worker = info.id if info is not None else 0
            self._rng = np.random.default_rng([self.seed, worker, torch.initial_seed() % 2**31])
        return self._rng

    def __getitem__(self, index):
        region = self.regions[index]
        if self.augment is None:
            image, box = region.image, region.box
        else:
            image, box = data_lib.augment_region(region, self._generator(), self.augment)
        return torch.from_numpy(preprocess_face(image, box, **self.preprocessing)), region.label


def _evaluate(model, inputs, labels, batch_size=512):
    model.eval()
    logits = []
    with torch.inference_mode():
        for start in range(0, len(inputs), batch_size):
            logits.append(model(torch.from_numpy(inputs[start:start + batch_size])))
    logits = torch.cat(logits) if logits else torch.zeros((0, 2))
    loss = nn.functional.cross_entropy(logits, torch.from_numpy(labels)).item() if len(
        labels) else float('nan')
    probabilities = torch.softmax(logits, 1).numpy()
    return loss, probabilities


def _subset_metrics(samples, labels, predictions):
    """Accuracy per sample kind and, for VOC boxes, per face-size bucket."""
    result = {}
    kinds = sorted({s.kind for s in samples})
    for kind in kinds:
        index = [i for i, s in enumerate(samples) if s.kind == kind]
        result[f'kind={kind}'] = classification_metrics(labels[index], predictions[index])
    for name, low, high in SIZE_BUCKETS:
        index = [i for i, s in enumerate(samples)
                 if s.kind == 'voc' and low <= min(s.box[2], s.box[3]) < high]
        if index:
            result[f'voc_box_short_side {name}'] = classification_metrics(labels[index],
                                                                          predictions[index])
    for source in sorted({s.source for s in samples}):
        index = [i for i, s in enumerate(samples) if s.source == source]
        result[f'source={source}'] = classification_metrics(labels[index], predictions[index])
    return result


def measure_ms_per_face(model, input_size, batch=8, repeats=30):
    """Median ms per face of a batched CPU forward pass (noisy on a shared machine)."""
    model = copy.deepcopy(model).cpu().eval()
    inputs = torch.randn(batch, 3, input_size, input_size)
    times = []
    with torch.inference_mode():
        model(inputs)
        for _ in range(repeats):
            start = time.perf_counter()
            model(inputs)
            times.append((time.perf_counter() - start) * 1000.0 / batch)
    return float(np.median(times))


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--data', action='append', required=True, metavar='DIR',
                        help='ImageFolder (with_mask/, without_mask/) or VOC folder; repeatable')
    parser.add_argument('--out', required=True, metavar='FILE', help='model file to write')
    parser.add_argument('--report-dir', metavar='DIR',
                        help='where metrics.json and the PNGs go (default training/runs/<name>)')
    parser.add_argument('--input-size', type=int, default=classifier.DEFAULT_INPUT_SIZE)
    parser.add_argument('--channels', type=_conv_channels,
                        default=','.join(map(str, classifier.DEFAULT_CONV_CHANNELS)),
                        help='conv block widths, comma separated (default %(default)s)')
    parser.add_argument('--margin', type=float, default=classifier.DEFAULT_MARGIN)
    parser.add_argument('--photometric', choices=classifier.PHOTOMETRIC_NORMALISATIONS,
                        default=classifier.DEFAULT_PHOTOMETRIC,
                        help='per-crop photometric normalisation in preprocess_face, recorded in '
                             'the model file (default %(default)s)')
    parser.add_argument('--epochs', type=int, default=40)
    parser.add_argument('--patience', type=int, default=6,
                        help='stop after this many epochs without a better validation loss')
    parser.add_argument('--batch-size', type=int, default=128)
    parser.add_argument('--lr', type=float, default=2e-3)
    parser.add_argument('--weight-decay', type=float, default=1e-4)
    parser.add_argument('--label-smoothing', type=float, default=0.05)
    parser.add_argument('--val-fraction', type=float, default=0.2)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--incorrect-as', choices=data_lib.INCORRECT_CHOICES, default='no_mask',
                        help='label of VOC mask_weared_incorrect boxes (default %(default)s)')
    parser.add_argument('--incorrect-weight', type=float, default=3.0,
                        help='sampling weight of mask_weared_incorrect boxes relative to '
                             'their class (default %(default)s)')
    parser.add_argument('--face-detector', default='centerface',
                        help='detector boxing ImageFolder faces (default %(default)s)')
    parser.add_argument('--detector-scale', type=float, default=1.0,
                        help='processing scale of that detector (default %(default)s)')
    parser.add_argument('--no-detect', action='store_true',
                        help='use whole ImageFolder images instead of detected faces')
    parser.add_argument('--cache-dir', default=str(data_lib.DEFAULT_CACHE_DIR),
                        help='face detector results cache (default %(default)s)')
    parser.add_argument('--threads', type=int, default=0, help='torch threads (0 = default)')
    parser.add_argument('--workers', type=int, default=1, help='augmentation worker processes')
    parser.add_argument('--max-per-folder', type=int, default=0,
                        help='use at most this many samples per folder (quick runs; 0 = all)')
    parser.add_argument('--no-augment', action='store_true', help='disable augmentation')
    parser.add_argument('--heldout', metavar='FILE',
                        help='held-out split (training/heldout_split.json): its faces are '
                             'left out of training, validation and calibration')
    parser.add_argument('--synth-variants', type=int, default=0,
                        help='masks drawn per unmasked training face (0 = none)')
    parser.add_argument('--synth-wrong-p', type=float, default=0.3,
                        help='share of drawn masks worn wrong (under the nose / on the chin, '
                             'labelled no mask)')
    parser.add_argument('--synth-beard-p', type=float, default=0.0,
                        help='probability of facial hair drawn under a synthetic mask, and of '
                             'one more rendering of the face with facial hair and no mask')
    parser.add_argument('--align-faces', action='store_true',
                        help='train and validate on faces turned upright by their CenterFace '
                             'landmarks, as the pipeline classifies them (align_faces)')
    parser.add_argument('--synth-share', type=float, default=0.3,
                        help='share of each batch drawn from the synthetic faces')
    parser.add_argument('--webcam-p', type=float, default=0.0,
                        help='probability of webcam conditions (backlight, low light + noise, '
                             'upscaled small frame, colour cast, motion blur, codec)')
    parser.add_argument('--darker-skin-p', type=float, default=0.0,
                        help='probability of rendering the face as darker skin '
                             '(training/conditions.darker_skin; label unchanged)')
    parser.add_argument('--strong-cast-p', type=float, default=0.0,
                        help='probability of a strong white-balance error (channel ratios up '
                             'to 3x: training/conditions.strong_colour_cast; label unchanged)')
    parser.add_argument('--channel-shuffle-p', type=float, default=0.0,
                        help='probability of permuting the colour channels of a face (after '
                             'every other augmentation; label unchanged), so that hue alone '
                             'cannot tell a mask from skin')
    parser.add_argument('--rotation-deg', type=float, default=data_lib.AugmentConfig.rotation_deg,
                        help='largest in-plane rotation of a face (head roll), degrees')
    parser.add_argument('--rotation-p', type=float, default=data_lib.AugmentConfig.rotation_p,
                        help='probability of rotating a face by up to --rotation-deg')
    parser.add_argument('--dim-weight', type=float, default=1.0,
                        help='sampling weight of real faces whose box is dim (mean grey '
                             f'< {conditions.DIM_GREY}), masked and unmasked, relative to '
                             'their class (default 1: no preference)')
    parser.add_argument('--samples-per-epoch', type=int, default=0,
                        help='faces drawn per epoch (0 = the number of training faces)')
    parser.add_argument('--init', metavar='FILE',
                        help="start from this model file's weights (same architecture): "
                             'fine-tuning, a fraction of the cost of training from scratch')
    parser.add_argument('--swa-from', type=int, default=0, metavar='EPOCH',
                        help='ship the average of the weights of every epoch from EPOCH on '
                             '(stochastic weight averaging; BatchNorm statistics recomputed '
                             'on one epoch of training faces) instead of the best epoch; '
                             '0 = off')
    parser.add_argument('--no-calibrate', action='store_true',
                        help='skip temperature scaling on the validation faces')
    parser.add_argument('--no-progress', action='store_true')
    args = parser.parse_args(argv)
    blocks = len(args.channels)
    if args.input_size < 1 or args.input_size % (1 << blocks):
        parser.error(f'--input-size {args.input_size}: must be a positive multiple of '
                     f'{1 << blocks} for {blocks} conv blocks (--channels)')
    if args.rotation_deg < 0:
        parser.error(f'--rotation-deg {args.rotation_deg:g}: must be >= 0')
    if not 0.0 <= args.rotation_p <= 1.0:
        parser.error(f'--rotation-p {args.rotation_p:g}: must be a probability in [0, 1]')
    if not 0.0 <= args.channel_shuffle_p <= 1.0:
        parser.error(f'--channel-shuffle-p {args.channel_shuffle_p:g}: must be a probability '
                     'in [0, 1]')
    if not 0.0 <= args.synth_beard_p <= 1.0:
        parser.error(f'--synth-beard-p {args.synth_beard_p:g}: must be a probability in [0, 1]')
    if not 0 <= args.swa_from <= args.epochs:
        parser.error(f'--swa-from {args.swa_from}: must be 0 (off) or an epoch in 1..{args.epochs}'
                     ' (--epochs)')
    return args


def _conv_channels(text):
    """--channels: positive integers separated by commas, e.g. 16,32,64."""
    try:
        channels = tuple(int(part) for part in text.split(','))
    except ValueError:
        channels = ()
    if not channels or any(width < 1 for width in channels):
        raise argparse.ArgumentTypeError(
            f'{text!r}: expected positive integers separated by commas, e.g. 16,32,64')
    return channels


def _limit_per_folder(samples, limit, seed):
    if not limit:
        return samples
    rng = np.random.default_rng(seed)
    kept = []
    for source in sorted({s.source for s in samples}):
        groups = sorted({s.group for s in samples if s.source == source})
        rng.shuffle(groups)
        chosen, count = set(), 0
        for group in groups:
            if count >= limit:
                break
            chosen.add(group)
            count += sum(1 for s in samples if s.group == group)
        kept += [s for s in samples if s.source == source and s.group in chosen]
    return kept


def _sampling_weights(train_samples, regions, drawn, args):
    """Per-face sampling weights: classes balanced among real faces, synthetic ones apart.

    Real faces: each class gets half of the real share; the new real-world sets count twice
    within their class (they hold what the old data lacks).  Synthetic faces get
    ``synth_share`` of every batch, masks and masks worn wrong split by their own counts.
    """
    real = np.ones(len(regions))
    labels = np.array([r.label for r in regions])
    boost = np.array([2.0 if 'real-world-masks' in s.source else 1.0 for s in train_samples])
    real *= boost
    for label in (MASK, 1 - MASK):
        chosen = labels == label
        if chosen.any():
            real[chosen] *= 0.5 / real[chosen].sum()
    # Rare but decisive: masks worn under the nose (VOC mask_weared_incorrect), on top of
    # their class's share.
    real[[s.voc_class == 'mask_weared_incorrect' for s in train_samples]] *= (
        args.incorrect_weight)
    # Dim faces of both classes: where a dark face and a dark mask look alike, so both sides
    # of that boundary are seen more often (on top of their class's share, like the above).
    if args.dim_weight != 1.0:
        dim = np.array([conditions.darkness(r.image, r.box) < conditions.DIM_GREY
                        for r in regions])
        real[dim] *= args.dim_weight
    share = args.synth_share if drawn else 0.0
    weights = real * (1.0 - share)
    if drawn:
        synth = np.ones(len(drawn)) * share / len(drawn)
        weights = np.concatenate([weights, synth])
    return torch.from_numpy(weights)


def _logits(model, inputs, batch_size=512):
    model.eval()
    with torch.inference_mode():
        return torch.cat([model(torch.from_numpy(inputs[start:start + batch_size]))
                          for start in range(0, len(inputs), batch_size)]).numpy()


def _class_counts(samples):
    labels = [s.label for s in samples]
    return {'mask': labels.count(MASK), 'no_mask': len(labels) - labels.count(MASK)}


def train(args):
    started = time.perf_counter()
    torch.manual_seed(args.seed)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    progress = not args.no_progress
    out = Path(args.out)
    report_dir = Path(args.report_dir) if args.report_dir else (
        data_lib.REPO_ROOT / 'training' / 'runs' / out.stem)
    report_dir.mkdir(parents=True, exist_ok=True)
    model = MaskNet(args.input_size, args.channels)
    if args.init:
        initial, initial_meta = classifier.load_model_file(args.init)
        if initial.architecture() != model.architecture():
            raise SystemExit(f'--init {args.init}: architecture {initial.architecture()} is not '
                             f'{model.architecture()}')
        model.load_state_dict(initial.state_dict())
        print(f'starting from the weights of {args.init}', flush=True)
    preprocessing = {'input_size': args.input_size, 'margin': args.margin,
                     'mean': classifier.DEFAULT_MEAN, 'std': classifier.DEFAULT_STD,
                     'photometric': args.photometric}

    samples, summary = data_lib.load_samples(
        args.data, args.face_detector, args.incorrect_as, args.cache_dir,
        detect_faces=not args.no_detect, progress=progress,
        detector_settings={'scale': args.detector_scale})
    held_out = []
    if args.heldout:
        samples, held_out = heldout.partition(samples, heldout.load_split(args.heldout))
        print(f'held out (never trained, validated or calibrated on): {len(held_out)} faces',
              flush=True)
    samples = _limit_per_folder(samples, args.max_per_folder, args.seed)
    train_samples, val_samples = data_lib.split_samples(samples, args.val_fraction, args.seed)
    if not train_samples or not val_samples:
        raise SystemExit(f'not enough data: {len(train_samples)} training and '
                         f'{len(val_samples)} validation faces')
    print(f'faces: {len(train_samples)} train {_class_counts(train_samples)}, '
          f'{len(val_samples)} validation {_class_counts(val_samples)}; '
          f'{summary.duplicates_removed} duplicate files removed', flush=True)

    regions = data_lib.cached_regions(train_samples, 2 * args.input_size, args.cache_dir,
                                      progress)
    turned = None
    if args.align_faces:
        regions, turned = data_lib.upright_regions(regions, progress=progress)
        print(f'faces turned upright: {turned} of {len(regions)}', flush=True)
    synthetic_info = None
    drawn = []
    if args.synth_variants > 0:
        drawn, synthetic_info = synthetic.synthesize(
            train_samples, regions, args.synth_variants, args.synth_wrong_p, args.seed,
            args.cache_dir, progress, beard_p=args.synth_beard_p, upright=args.align_faces)
        print(f'synthetic faces: {len(drawn)} drawn on {synthetic_info.get("faces")} real '
              f'unmasked faces ({_class_counts(drawn)})', flush=True)
    val_inputs, val_labels = data_lib.eval_tensors(val_samples, preprocessing, progress,
                                                   args.align_faces)
    augment = None if args.no_augment else data_lib.AugmentConfig(
        webcam_p=args.webcam_p, darker_skin_p=args.darker_skin_p,
        strong_cast_p=args.strong_cast_p, rotation_deg=args.rotation_deg,
        rotation_p=args.rotation_p, channel_shuffle_p=args.channel_shuffle_p)
    dataset = AugmentedFaces(regions + drawn, preprocessing, augment, args.seed)
    weights = _sampling_weights(train_samples, regions, drawn, args)
    epoch_size = args.samples_per_epoch or len(regions)
    sampler = WeightedRandomSampler(weights, epoch_size, replacement=True,
                                    generator=torch.Generator().manual_seed(args.seed))
    loader = DataLoader(dataset, batch_size=args.batch_size, sampler=sampler,
                        num_workers=args.workers, persistent_workers=args.workers > 0,
                        drop_last=epoch_size > args.batch_size)

    optimiser = torch.optim.AdamW(model.parameters(), lr=args.lr,
                                  weight_decay=args.weight_decay)
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimiser, factor=0.5, patience=2)
    loss_function = nn.CrossEntropyLoss(label_smoothing=args.label_smoothing)
    history, best, best_loss, stale = [], None, float('inf'), 0
    averaged = torch.optim.swa_utils.AveragedModel(model) if args.swa_from > 0 else None
    averaged_epochs = []
    for epoch in range(1, args.epochs + 1):
        model.train()
        total_loss, correct, seen = 0.0, 0, 0
        batches = loader
        if progress:
            from tqdm import tqdm
            batches = tqdm(loader, desc=f'epoch {epoch}', leave=False, unit='batch')
        for inputs, labels in batches:
            optimiser.zero_grad(set_to_none=True)
            logits = model(inputs)
            loss = loss_function(logits, labels)
            loss.backward()
            optimiser.step()
            total_loss += loss.item() * len(labels)
            correct += (logits.argmax(1) == labels).sum().item()
            seen += len(labels)
        val_loss, probabilities = _evaluate(model, val_inputs, val_labels)
        val_accuracy = float((probabilities.argmax(1) == val_labels).mean())
        scheduler.step(val_loss)
        history.append({'epoch': epoch, 'train_loss': total_loss / seen,
                        'train_accuracy': correct / seen, 'val_loss': val_loss,
                        'val_accuracy': val_accuracy, 'lr': optimiser.param_groups[0]['lr'],
                        'elapsed_s': time.perf_counter() - started})
        print(f'epoch {epoch:3d}  train loss {total_loss / seen:.4f} acc {correct / seen:.4f}  '
              f'val loss {val_loss:.4f} acc {val_accuracy:.4f}  '
              f'({time.perf_counter() - started:.0f} s)', flush=True)
        if averaged is not None and epoch >= args.swa_from:
            averaged.update_parameters(model)
            averaged_epochs.append(epoch)
        if val_loss < best_loss - 1e-4:
            best_loss, best, stale = val_loss, copy.deepcopy(model.state_dict()), 0
        else:
            stale += 1
            if stale >= args.patience:
                print(f'early stop: no better validation loss for {stale} epochs', flush=True)
                break
    weight_average = None
    if averaged_epochs:
        # The running statistics of the averaged weights are not the average of the epochs'.
        torch.optim.swa_utils.update_bn(loader, averaged)
        model.load_state_dict(averaged.module.state_dict())
        average_loss, _ = _evaluate(model, val_inputs, val_labels)
        weight_average = {'epochs': [averaged_epochs[0], averaged_epochs[-1]],
                          'val_loss': average_loss, 'best_epoch_val_loss': best_loss}
        print(f'weights averaged over epochs {averaged_epochs[0]}-{averaged_epochs[-1]}: '
              f'validation loss {average_loss:.4f} (best single epoch {best_loss:.4f})',
              flush=True)
    else:
        if averaged is not None:
            print(f'no weight average: training stopped before epoch {args.swa_from}; '
                  'the best epoch ships', flush=True)
        model.load_state_dict(best)
    model.eval()
    calibration_info = None
    if not args.no_calibrate:
        val_logits = _logits(model, val_inputs)
        calibration_info = calibration.calibrate(val_logits, val_labels)
        calibration_info['fitted_on'] = (f'{len(val_labels)} validation faces (not held out, '
                                         'not trained on)')
        calibration.plot_reliability(val_logits, val_labels, calibration_info['temperature'],
                                     report_dir / 'reliability.png')
        print(f'temperature {calibration_info["temperature"]:.3f}: validation NLL '
              f'{calibration_info["nll_before"]:.4f} -> {calibration_info["nll_after"]:.4f}, '
              f'ECE {calibration_info["ece_before"]:.4f} -> {calibration_info["ece_after"]:.4f}',
              flush=True)
    val_loss, probabilities = _evaluate(model, val_inputs, val_labels)
    predictions = probabilities.argmax(1)
    val_metrics = classification_metrics(val_labels, predictions)
    val_metrics['loss'] = val_loss
    elapsed = time.perf_counter() - started
    ms_per_face = measure_ms_per_face(model, args.input_size)
    best_epoch = min(history, key=lambda h: h['val_loss'])['epoch']
    metrics = {
        'validation': val_metrics,
        'validation_subsets': _subset_metrics(val_samples, val_labels, predictions),
        'best_epoch': best_epoch, 'epochs_run': len(history),
        'weight_average': weight_average,
        'training_time_s': elapsed, 'torch_threads': torch.get_num_threads(),
        'ms_per_face_cpu_batch8': ms_per_face,
        'parameters': int(sum(p.numel() for p in model.parameters())),
        'history': history}
    training_data = {
        'folders': summary.as_dict(), 'train_faces': _class_counts(train_samples),
        'validation_faces': _class_counts(val_samples),
        'split': {'by': 'image content hash, per folder and majority label',
                  'val_fraction': args.val_fraction, 'seed': args.seed},
        'incorrect_as': args.incorrect_as, 'incorrect_weight': args.incorrect_weight,
        'dim_weight': args.dim_weight,
        'face_detector': None if args.no_detect else {'name': args.face_detector,
                                                      'scale': args.detector_scale},
        'augmentation': None if augment is None else asdict(augment),
        'held_out': None if not args.heldout else {
            'split_file': Path(args.heldout).name, 'faces': len(held_out)},
        'synthetic': None if not drawn else {
            **synthetic_info, 'renderings': len(drawn), 'per_face': args.synth_variants,
            'wrong_p': args.synth_wrong_p, 'batch_share': args.synth_share,
            'beard_p': args.synth_beard_p,
            'labels': _class_counts(drawn)},
        'upright': None if not args.align_faces else {
            'turned': turned, 'of': len(regions),
            'min_roll_deg': classifier.MIN_ALIGN_ROLL, 'max_roll_deg': classifier.MAX_ALIGN_ROLL,
            'min_face_side': classifier.MIN_ALIGN_SIDE,
            'min_eye_fraction': classifier.MIN_ALIGN_EYE_FRACTION},
        'samples_per_epoch': epoch_size,
        'initialised_from': Path(args.init).name if args.init else None,
        'command': 'python -m training.train ' + ' '.join(sys.argv[1:])}
    metadata = {
        'margin': args.margin, 'mean': list(classifier.DEFAULT_MEAN),
        'std': list(classifier.DEFAULT_STD), 'photometric': args.photometric,
        'training_data': training_data,
        'metrics': {'val_accuracy': val_metrics['accuracy'], 'val_loss': val_loss,
                    'val_per_class': val_metrics['per_class'],
                    'val_confusion_matrix': val_metrics['confusion_matrix']['matrix'],
                    'ms_per_face_cpu_batch8': ms_per_face},
        'created_unix': int(time.time())}
    if calibration_info is not None:
        metadata['calibration'] = calibration_info
    classifier.save_model_file(out, model, metadata)
    split = {'train_images': sorted({s.image_path for s in train_samples}),
             'val_images': sorted({s.image_path for s in val_samples})}
    (report_dir / 'split.json').write_text(json.dumps(split, indent=1))
    (report_dir / 'metrics.json').write_text(json.dumps(
        {'model': str(out), 'training_data': training_data, **metrics}, indent=1))
    plot_curves(history, report_dir / 'curves.png')
    plot_confusion(val_metrics, report_dir / 'confusion.png', 'validation')
    shipped = (f'best epoch {best_epoch}' if weight_average is None else
               'weights of epochs {}-{} averaged'.format(*weight_average['epochs']))
    print(f'validation accuracy {val_metrics["accuracy"]:.4f} ({shipped}, '
          f'{len(val_labels)} faces); {ms_per_face:.3f} ms/face; training took {elapsed:.0f} s')
    print(f'wrote {out} ({out.stat().st_size / 1e6:.2f} MB) and {report_dir}/metrics.json, '
          'split.json, curves.png, confusion.png')
    return metrics


def main(argv=None):
    try:
        train(parse_args(argv))
    except (data_lib.DataError, classifier.ModelFileError) as error:
        print(f'error: {error}', file=sys.stderr)
        return 2
    return 0


if __name__ == '__main__':
    sys.exit(main())

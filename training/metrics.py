"""Classification metrics and the PNG plots shared by train.py and evaluate.py."""
from pathlib import Path

import numpy as np

from mask_detection.classifier import CLASS_NAMES


def classification_metrics(labels, predictions):
    """Return accuracy, per-class precision/recall/n and the confusion matrix (rows = truth)."""
    labels = np.asarray(labels, dtype=np.int64)
    predictions = np.asarray(predictions, dtype=np.int64)
    n_classes = len(CLASS_NAMES)
    confusion = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(confusion, (labels, predictions), 1)
    per_class = {}
    for index, name in enumerate(CLASS_NAMES):
        predicted = confusion[:, index].sum()
        actual = confusion[index].sum()
        per_class[name] = {
            'precision': float(confusion[index, index] / predicted) if predicted else None,
            'recall': float(confusion[index, index] / actual) if actual else None,
            'n': int(actual)}
    total = int(confusion.sum())
    return {'accuracy': float(np.trace(confusion) / total) if total else None,
            'n': total, 'per_class': per_class,
            'confusion_matrix': {'rows_truth_cols_predicted': list(CLASS_NAMES),
                                 'matrix': confusion.tolist()}}


def _pyplot():
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    return plt


def plot_confusion(metrics, path, title='confusion matrix'):
    plt = _pyplot()
    matrix = np.asarray(metrics['confusion_matrix']['matrix'])
    figure, axes = plt.subplots(figsize=(4, 3.6))
    axes.imshow(matrix, cmap='Blues')
    for (row, col), value in np.ndenumerate(matrix):
        axes.text(col, row, str(value), ha='center', va='center',
                  color='white' if value > matrix.max() / 2 else 'black')
    axes.set_xticks(range(len(CLASS_NAMES)), CLASS_NAMES)
    axes.set_yticks(range(len(CLASS_NAMES)), CLASS_NAMES)
    axes.set_xlabel('predicted')
    axes.set_ylabel('truth')
    accuracy = metrics.get('accuracy')
    axes.set_title(f'{title}\naccuracy {accuracy:.4f}' if accuracy is not None else title)
    figure.tight_layout()
    figure.savefig(Path(path), dpi=100)
    plt.close(figure)


def plot_curves(history, path):
    plt = _pyplot()
    epochs = [h['epoch'] for h in history]
    figure, (loss_axes, acc_axes) = plt.subplots(1, 2, figsize=(9, 3.5))
    loss_axes.plot(epochs, [h['train_loss'] for h in history], label='train')
    loss_axes.plot(epochs, [h['val_loss'] for h in history], label='validation')
    loss_axes.set_xlabel('epoch')
    loss_axes.set_ylabel('loss')
    loss_axes.legend()
    acc_axes.plot(epochs, [h['train_accuracy'] for h in history], label='train (augmented)')
    acc_axes.plot(epochs, [h['val_accuracy'] for h in history], label='validation')
    acc_axes.set_xlabel('epoch')
    acc_axes.set_ylabel('accuracy')
    acc_axes.legend()
    figure.tight_layout()
    figure.savefig(Path(path), dpi=100)
    plt.close(figure)


def plot_buckets(result, path, title):
    """Bar chart of recall / label accuracy / precision per face-size bucket."""
    plt = _pyplot()
    names = list(result['buckets'])
    keys = ('recall', 'label_accuracy', 'precision')
    figure, axes = plt.subplots(figsize=(7, 3.6))
    width = 0.26
    for offset, key in enumerate(keys):
        values = [result['buckets'][n][key] or 0.0 for n in names]
        bars = axes.bar(np.arange(len(names)) + (offset - 1) * width, values, width, label=key)
        for bar, value in zip(bars, values):
            axes.text(bar.get_x() + bar.get_width() / 2, value + 0.01, f'{value:.2f}',
                      ha='center', va='bottom', fontsize=7)
    labels = [f'{n}\n(n={result["buckets"][n]["n_faces"]})' for n in names]
    axes.set_xticks(np.arange(len(names)), labels)
    axes.set_ylim(0, 1.12)
    axes.set_ylabel('fraction')
    axes.set_title(title)
    axes.legend(loc='lower right', fontsize=8)
    figure.tight_layout()
    figure.savefig(Path(path), dpi=100)
    plt.close(figure)

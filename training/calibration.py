"""Temperature scaling: make the classifier's probabilities mean what they say.

One scalar T divides the logits (softmax(z / T)); it is fitted on validation faces by minimising
the negative log-likelihood, so the argmax (the label) is unchanged and only the confidence moves.
The model file stores T in its metadata (a plain float: safe to load), and
``mask_detection.classifier.MaskClassifier`` applies it, so UNKNOWN (confidence below
``unknown_threshold``) and the published confidences are calibrated.  training.train fits it
after training (``--no-calibrate`` to skip) and draws the reliability diagram.
"""
import math

import numpy as np
import torch


def _as_tensors(logits, labels):
    return (torch.as_tensor(np.asarray(logits), dtype=torch.float64),
            torch.as_tensor(np.asarray(labels), dtype=torch.int64))


def nll(logits, labels, temperature=1.0):
    """Mean negative log-likelihood of ``labels`` under softmax(logits / temperature)."""
    z, y = _as_tensors(logits, labels)
    return float(torch.nn.functional.cross_entropy(z / float(temperature), y))


def fit_temperature(logits, labels, bounds=(0.05, 20.0)):
    """Return the T > 0 that minimises the NLL of softmax(logits / T) on (logits, labels).

    The NLL is convex in 1/T, so a bounded golden-section search on log T finds it reliably
    (no learning rate to tune); 1.0 when there is nothing to fit.
    """
    z, y = _as_tensors(logits, labels)
    if len(y) == 0:
        return 1.0

    def loss(log_t):
        return float(torch.nn.functional.cross_entropy(z / math.exp(log_t), y))
    low, high = math.log(bounds[0]), math.log(bounds[1])
    ratio = (math.sqrt(5) - 1) / 2
    a, b = high - ratio * (high - low), low + ratio * (high - low)
    fa, fb = loss(a), loss(b)
    for _ in range(80):
        if fa < fb:
            high, b, fb = b, a, fa
            a = high - ratio * (high - low)
            fa = loss(a)
        else:
            low, a, fa = a, b, fb
            b = low + ratio * (high - low)
            fb = loss(b)
    return float(math.exp((low + high) / 2))


def probabilities(logits, temperature=1.0):
    z = torch.as_tensor(np.asarray(logits), dtype=torch.float64) / float(temperature)
    return torch.softmax(z, 1).numpy()


def reliability(logits, labels, temperature=1.0, bins=10):
    """Return (ECE, per-bin list of {low, high, n, confidence, accuracy}) of the chosen label."""
    p = probabilities(logits, temperature)
    labels = np.asarray(labels)
    confidence = p.max(1)
    correct = (p.argmax(1) == labels).astype(np.float64)
    # Two classes: the chosen label's probability is in [0.5, 1].
    edges = np.linspace(0.5, 1.0, bins + 1)
    table, ece = [], 0.0
    for index, (low, high) in enumerate(zip(edges[:-1], edges[1:])):
        last = index == bins - 1
        chosen = (confidence >= low) & ((confidence <= high) if last else (confidence < high))
        n = int(chosen.sum())
        entry = {'low': float(low), 'high': float(high), 'n': n,
                 'confidence': float(confidence[chosen].mean()) if n else None,
                 'accuracy': float(correct[chosen].mean()) if n else None}
        if n:
            ece += n / len(labels) * abs(entry['confidence'] - entry['accuracy'])
        table.append(entry)
    return float(ece), table


def calibrate(logits, labels):
    """Fit T; return the plain-value summary stored in the model's metadata."""
    temperature = fit_temperature(logits, labels)
    ece_before, _ = reliability(logits, labels, 1.0)
    ece_after, _ = reliability(logits, labels, temperature)
    return {'method': 'temperature scaling (softmax(logits / T))',
            'temperature': temperature, 'n': int(len(labels)),
            'nll_before': nll(logits, labels, 1.0), 'nll_after': nll(logits, labels, temperature),
            'ece_before': ece_before, 'ece_after': ece_after}


def plot_reliability(logits, labels, temperature, path, title='validation faces'):
    """Reliability diagram (PNG): accuracy against confidence, before and after scaling."""
    from training.metrics import _pyplot
    plt = _pyplot()
    figure, axes = plt.subplots(figsize=(4.8, 4.2))
    axes.plot([0.5, 1.0], [0.5, 1.0], color='grey', linestyle=':', label='perfect')
    for t, name, marker in ((1.0, 'raw', 'o'), (temperature, f'T = {temperature:.2f}', 's')):
        ece, table = reliability(logits, labels, t)
        points = [(e['confidence'], e['accuracy']) for e in table if e['n']]
        axes.plot([c for c, _ in points], [a for _, a in points], marker=marker,
                  label=f'{name} (ECE {ece:.3f})')
    axes.set_xlabel('confidence of the chosen label')
    axes.set_ylabel('accuracy')
    axes.set_xlim(0.5, 1.0)
    axes.set_ylim(0.0, 1.02)
    axes.set_title(f'reliability, {title} (n={len(labels)})')
    axes.legend(loc='lower right', fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)

"""Pictures and tables people look at: training curves from BasicSR logs, comparison grids, metric tables."""
import re

import cv2
import numpy as np

# BasicSR's MessageLogger line: "[name..][epoch:  0, iter:     100, lr:(1.000e-03,)] [eta: ...] l_rec: 1.2e-02 ..."
_TRAIN_LINE = re.compile(r'iter:\s*([\d,]+), lr:.*?\]\s*\[eta:(.*?)\]\s*(.*)$')
# Its "[eta: 0:10:01, time (data): 3.083 (0.012)]": seconds per iteration (the mean of the last 200) and per load.
_ITER_TIME = re.compile(r'time \(data\): ([\d.]+)')
_LOSS_ITEM = re.compile(r'(\w+): ([-+\d.eE]+|nan|inf)')
# SRModel._log_validation_metric_values: "Validation <set>\n\t # psnr: 23.1234\tBest: ..."
_VAL_HEADER = re.compile(r'Validation (\S+)')
_VAL_ITEM = re.compile(r'# (\w+): ([-+\d.eE]+)')


def parse_train_log(path):
    """Losses and validation metrics from a BasicSR training log.

    Returns:
        dict: ``{'train': {name: [(iter, value), ...]}, 'val': {metric: [(iter, value), ...]},
        'seconds': [(iter, seconds per iteration), ...]}`` (the time BasicSR logs with each training
        line: its mean over the last 200 iterations). Validation values are attributed to the last
        training iteration logged before them (the final validation after training to the last
        iteration seen).
    """
    train, val, seconds = {}, {}, []
    last_iter = 0
    in_validation = False
    with open(path, encoding='utf-8') as f:
        for line in f:
            match = _TRAIN_LINE.search(line)
            if match:
                last_iter = int(match.group(1).replace(',', ''))
                timed = _ITER_TIME.search(match.group(2))
                if timed:
                    seconds.append((last_iter, float(timed.group(1))))
                for name, value in _LOSS_ITEM.findall(match.group(3)):
                    train.setdefault(name, []).append((last_iter, float(value)))
                in_validation = False
                continue
            if _VAL_HEADER.search(line):
                in_validation = True
                continue
            if in_validation:
                for name, value in _VAL_ITEM.findall(line):
                    val.setdefault(name, []).append((last_iter, float(value)))
    return {'train': train, 'val': val, 'seconds': seconds}


def plot_training_curves(curves, out_path, title=''):
    """Write a PNG with the training losses (log scale) and the validation metrics."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    metrics = sorted(curves['val'])
    fig, axes = plt.subplots(1, 1 + len(metrics), figsize=(4.5 * (1 + len(metrics)), 3.6), squeeze=False)
    ax = axes[0, 0]
    for name, points in sorted(curves['train'].items()):
        its, values = zip(*points)
        ax.plot(its, values, label=name)
    ax.set_yscale('log')
    ax.set_xlabel('iteration')
    ax.set_title('training loss')
    ax.legend(fontsize=8)
    for ax, metric in zip(axes[0, 1:], metrics):
        its, values = zip(*curves['val'][metric])
        ax.plot(its, values, marker='o')
        ax.set_xlabel('iteration')
        ax.set_title(f'validation {metric}')
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(out_path, dpi=100)
    plt.close(fig)


def final_validation(path):
    """``{metric: value}`` of the last validation in a BasicSR training log (an error if there is none)."""
    metrics = {name: points[-1][1] for name, points in parse_train_log(path)['val'].items()}
    if not metrics:
        raise RuntimeError(f'no validation in {path}')
    return metrics


def read_image_bgr8(path):
    """An 8- or 16-bit image file as HxWx3 uint8 BGR for figures (16 bits rounded, not truncated)."""
    img = cv2.imread(path, cv2.IMREAD_UNCHANGED)
    if img is None:
        raise FileNotFoundError(f'cannot read {path}')
    if img.dtype == np.uint16:
        img = np.round(img / 257.0).astype(np.uint8)
    return img


def label_image(img, text):
    """A copy of an HxWx3 uint8 BGR image with a caption bar on top."""
    bar_height = 22
    bar = np.full((bar_height, img.shape[1], 3), 255, np.uint8)
    cv2.putText(bar, text, (4, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
    return np.concatenate([bar, img], axis=0)


def comparison_grid(rows, labels, gap=4):
    """Tile labelled images: ``rows`` is a list of lists of equally sized HxWx3 uint8 BGR images.

    Every row must have ``len(labels)`` images; the labels caption the columns of each row.
    """
    out_rows = []
    for images in rows:
        if len(images) != len(labels):
            raise ValueError(f'each row needs {len(labels)} images ({labels}), got {len(images)}')
        height = max(img.shape[0] for img in images)
        cells = []
        for img, label in zip(images, labels):
            if img.shape[0] != height:
                img = cv2.resize(img, (int(img.shape[1] * height / img.shape[0]), height))
            cells.append(label_image(img, label))
            cells.append(np.full((height + 22, gap, 3), 255, np.uint8))
        out_rows.append(np.concatenate(cells[:-1], axis=1))
    width = max(row.shape[1] for row in out_rows)
    padded = []
    for row in out_rows:
        if row.shape[1] < width:
            row = np.concatenate([row, np.full((row.shape[0], width - row.shape[1], 3), 255, np.uint8)], axis=1)
        padded.extend([row, np.full((gap, width, 3), 255, np.uint8)])
    return np.concatenate(padded[:-1], axis=0)


def markdown_table(header, rows):
    """A GitHub markdown table; floats are printed with 4 decimals."""
    def fmt(value):
        return f'{value:.4f}' if isinstance(value, float) else str(value)
    lines = ['| ' + ' | '.join(header) + ' |', '|' + '---|' * len(header)]
    lines += ['| ' + ' | '.join(fmt(v) for v in row) + ' |' for row in rows]
    return '\n'.join(lines) + '\n'

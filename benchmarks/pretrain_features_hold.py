"""What a frozen encoder's features hold, before and after continued pretraining (issue 17's diagnosis).

For each model, the mean-pooled last-layer features of one 16-frame clip per video (`vjepa_tune.features.extract`)
of `pretrain_adaptation.py`'s labelled set (160 videos, synth seed 0) fit a ridge regression of scene properties that
synth drew (where the figure stands, how tall it is, the backdrop's brightness, whether it is mirrored) and a
linear softmax probe of the action; both are scored on the 400 fresh videos (seed 12). R^2 is the best over ridge
strengths 0.1-1000 (per property), the probe's accuracy is given for L2 weights 1e-3, 1e-2 and 1e-1.

    python benchmarks/pretrain_features_hold.py --data /tmp/ptb2/data random:tiny /tmp/ptb2/pretrain/scratch/model \\
        tiny /tmp/ptb2/pretrain/adaptation/model

Prints one JSON line per model.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from vjepa_tune.features import extract
from vjepa_tune.synth.layouts import plan

SETS = {"labelled": (40, 0), "fresh": (100, 12)}
"""Videos per class and synth seed of `pretrain_adaptation.py`'s labelled and fresh sets (64 px, 32 frames)."""
PROPERTIES = ("center_x", "figure_height", "floor_y", "backdrop_brightness", "mirror")


def drawn_properties(name: str) -> dict[str, list[float]]:
    """The properties synth drew for each video of a set, by its path under the set's folder."""
    per_class, seed = SETS[name]
    found = {}
    for job in plan("folder", seed, per_class, (64, 64), 32, 1.0):
        camera, backdrop = job.spec.camera, job.spec.backdrop
        found[job.relpath] = [camera.center_x, camera.figure_height, camera.floor_y, float(np.mean(backdrop.color0)),
                              float(camera.mirror)]
    return found


def features(model: str, root: Path) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Features, drawn properties and action names of every video under `root`."""
    drawn = drawn_properties(root.name)
    rows, properties, actions = [], [], []
    for video in extract(model, root, window_frames=32, stride_frames=32, frames_per_clip=16, pool="mean",
                         progress=False):
        relpath = Path(video.path).resolve().relative_to(root.resolve()).as_posix()
        rows.append(np.asarray(video.features)[0])
        properties.append(drawn[relpath])
        actions.append(relpath.split("/")[0])
    return np.stack(rows), np.array(properties), actions


def ridge_r2(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, test_y: np.ndarray) -> np.ndarray:
    mean, std = train_x.mean(0), train_x.std(0) + 1e-6
    a, b = (train_x - mean) / std, (test_x - mean) / std
    best = np.full(train_y.shape[1], -np.inf)
    for strength in (0.1, 1.0, 10.0, 100.0, 1000.0):
        weights = np.linalg.solve(a.T @ a + strength * np.eye(a.shape[1]), a.T @ (train_y - train_y.mean(0)))
        predicted = b @ weights + train_y.mean(0)
        r2 = 1 - ((test_y - predicted) ** 2).sum(0) / ((test_y - test_y.mean(0)) ** 2).sum(0)
        best = np.maximum(best, r2)
    return best


def linear_probe(train_x: np.ndarray, train_actions: list[str], test_x: np.ndarray, test_actions: list[str]
                 ) -> list[float]:
    classes = sorted(set(train_actions))
    mean, std = train_x.mean(0), train_x.std(0) + 1e-6
    a = torch.tensor((train_x - mean) / std, dtype=torch.float32)
    b = torch.tensor((test_x - mean) / std, dtype=torch.float32)
    a_labels = torch.tensor([classes.index(c) for c in train_actions])
    b_labels = torch.tensor([classes.index(c) for c in test_actions])
    accuracies = []
    for l2 in (1e-3, 1e-2, 1e-1):
        torch.manual_seed(0)
        linear = torch.nn.Linear(a.shape[1], len(classes))
        optimizer = torch.optim.LBFGS(linear.parameters(), max_iter=300)

        def closure(linear: torch.nn.Linear = linear, optimizer: torch.optim.LBFGS = optimizer,
                    l2: float = l2) -> torch.Tensor:
            optimizer.zero_grad()
            loss = torch.nn.functional.cross_entropy(linear(a), a_labels) + l2 * linear.weight.pow(2).sum()
            loss.backward()
            return loss

        optimizer.step(closure)
        with torch.no_grad():
            accuracies.append(round((linear(b).argmax(1) == b_labels).float().mean().item(), 3))
    return accuracies


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="pretrain_adaptation.py's WORK/data folder")
    parser.add_argument("models", nargs="+")
    args = parser.parse_args(argv)
    for model in args.models:
        train_x, train_y, train_actions = features(model, args.data / "labelled")
        test_x, test_y, test_actions = features(model, args.data / "fresh")
        r2 = ridge_r2(train_x, train_y, test_x, test_y)
        print(json.dumps({"model": model, **{f"r2_{n}": round(float(v), 3) for n, v in zip(PROPERTIES, r2,
                                                                                            strict=True)},
                          "linear_probe_acc": linear_probe(train_x, train_actions, test_x, test_actions)}),
              flush=True)


if __name__ == "__main__":
    main()

"""The training engine on hand-checkable cases: the plan of an epoch, the schedules, the loss (label smoothing, class
weights) and the optimizer step (exact accumulation, gradient clipping) computed by hand for a tiny model, and the
batches read ahead."""

from __future__ import annotations

import math
import threading
from pathlib import Path

import pytest
import torch

from vjepa_tune.config import TrainConfig
from vjepa_tune.data.dataset import Example, SkippedClip
from vjepa_tune.data.samples import Sample
from vjepa_tune.training.inputs import Batch, Pipeline
from vjepa_tune.training.loop import (
    StepContext,
    TrainState,
    batches,
    class_weights,
    lr_lambda,
    make_loss,
    plan_epoch,
    read_ahead_batches,
    train_epoch,
)
from vjepa_tune.training.precision import make_accelerator


# ------------------------------------------------------------------------------------------------ the plan
def test_plan_epoch_is_exact_keyed_and_covers_every_sample_once() -> None:
    cfg = TrainConfig(batch_size=2, accumulation_steps=3, seed=7)
    labels = [i % 4 for i in range(23)]
    steps = plan_epoch(23, 0, cfg, labels)
    assert sorted(i for step in steps for i in step) == list(range(23))
    assert [len(s) for s in steps] == [6, 6, 6, 5]
    assert steps == plan_epoch(23, 0, cfg, labels)
    assert steps != plan_epoch(23, 1, cfg, labels)
    two = plan_epoch(23, 0, TrainConfig(batch_size=1, accumulation_steps=3, seed=7), labels, processes=2)
    assert two == steps, "2 processes x batch 1 cover the steps of 1 process x batch 2"


def test_class_balanced_sampler_draws_classes_evenly() -> None:
    cfg = TrainConfig(batch_size=10, accumulation_steps=1, class_balance="sampler")
    labels = [0] * 90 + [1] * 10
    drawn = [labels[i] for step in plan_epoch(100, 0, cfg, labels) for i in step]
    assert 35 <= drawn.count(1) <= 65


def test_schedules_warm_up_and_decay() -> None:
    cosine = lr_lambda(TrainConfig(scheduler="cosine", warmup_ratio=0.1), 100)
    assert cosine(0) == pytest.approx(0.1) and cosine(9) == pytest.approx(1.0)
    assert cosine(55) == pytest.approx(0.5) and cosine(40) == pytest.approx(0.5 * (1 + math.cos(math.pi / 3)))
    assert cosine(99) < 0.01
    constant = lr_lambda(TrainConfig(), 100)
    assert constant(0) == constant(99) == 1.0


# ------------------------------------------------------------------------------------------------ the loss
LOGITS = torch.tensor([[2.0, 0.5, -1.0], [0.1, 0.2, 0.3], [-0.5, 1.5, 0.0], [1.0, 1.0, 3.0]])
LABELS = torch.tensor([0, 2, 1, 2])


def _log_probs(logits: torch.Tensor) -> list[list[float]]:
    """log softmax by hand, one row at a time."""
    rows = []
    for row in logits.tolist():
        total = math.log(sum(math.exp(v) for v in row))
        rows.append([v - total for v in row])
    return rows


def test_label_smoothing_spreads_its_share_of_the_target_over_every_class() -> None:
    smoothing, classes = 0.2, 3
    expected = sum(
        (1 - smoothing) * -row[y] + smoothing / classes * sum(-v for v in row)
        for row, y in zip(_log_probs(LOGITS), LABELS.tolist(), strict=True)
    )
    loss = make_loss(TrainConfig(label_smoothing=smoothing), None)(LOGITS, LABELS)
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    plain = sum(-row[y] for row, y in zip(_log_probs(LOGITS), LABELS.tolist(), strict=True))
    assert make_loss(TrainConfig(), None)(LOGITS, LABELS).item() == pytest.approx(plain, rel=1e-6)


def test_class_balanced_loss_weights_each_sample_by_its_class_inverse_frequency() -> None:
    weights = class_weights(TrainConfig(class_balance="loss"), [0, 0, 0, 1], 3)
    assert weights.tolist() == pytest.approx([4 / 9, 4 / 3, 0.0]), "total / (classes x count); 0 for an absent class"
    assert class_weights(TrainConfig(), [0, 1], 2) is None
    train_labels = [0, 1, 1, 2, 2, 2]  # weights 6/3 x (1, 1/2, 1/3)
    weights = class_weights(TrainConfig(class_balance="loss"), train_labels, 3)
    by_class = [2.0, 1.0, 2 / 3]
    expected = sum(by_class[y] * -row[y] for row, y in zip(_log_probs(LOGITS), LABELS.tolist(), strict=True))
    loss = make_loss(TrainConfig(class_balance="loss"), weights)(LOGITS, LABELS)
    assert loss.item() == pytest.approx(expected, rel=1e-6), "summed, weighted, not divided by the weights"


# ------------------------------------------------------------------------------------------------ one step
class _Examples(torch.utils.data.Dataset):
    def __init__(self, inputs: torch.Tensor, labels: torch.Tensor):
        self.inputs, self.labels = inputs, labels

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> Example:
        return Example(inputs=self.inputs[i], label=int(self.labels[i]), index=i)


def _step_context(cfg: TrainConfig, model: torch.nn.Module, dataset: _Examples, tmp_path: Path) -> StepContext:
    optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
    weights = class_weights(cfg, dataset.labels.tolist(), 3)
    pipeline = Pipeline(train_dataset=lambda epoch: dataset, eval_dataset=lambda split: dataset,
                        forward=lambda m, x: m(x))
    return StepContext(cfg=cfg, model=model, optimizer=optimizer,
                       scheduler=torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0),
                       accelerator=make_accelerator("fp32"), pipeline=pipeline, loss=make_loss(cfg, weights),
                       state=TrainState(), train_samples=[Sample(Path(f"{i}.mp4"), 0, f"{i}.mp4") for i in range(4)],
                       checkpoint=tmp_path / "state.pt")


@pytest.mark.parametrize("max_grad_norm", [None, 0.05], ids=["unclipped", "clipped"])
def test_one_step_moves_the_weights_by_the_hand_computed_mean_gradient_clipped_to_its_norm(
    tmp_path: Path, max_grad_norm: float | None
) -> None:
    """One optimizer step over 3 samples cut into micro-batches of 2 and 1, with label smoothing and class weights:
    plain SGD (lr 1) must move the weights by the gradient of (summed loss / 3), computed here without the engine,
    scaled down to `max_grad_norm` when its norm is larger."""
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 3)
    inputs, labels = torch.randn(4, 4), torch.tensor([0, 2, 2, 1])
    cfg = TrainConfig(batch_size=2, accumulation_steps=2, label_smoothing=0.1, class_balance="loss",
                      max_grad_norm=max_grad_norm, num_epochs=1)
    before = [p.detach().clone() for p in model.parameters()]

    step = [3, 0, 1]
    weights = [4 / 3, 4 / 3, 2 / 3]  # class counts 1, 1, 2 of 4 samples: 4 / (3 x count)
    w, b = (p.detach().clone().requires_grad_(True) for p in model.parameters())
    total = torch.zeros(())
    for i in step:
        logp = torch.log_softmax(inputs[i] @ w.T + b, dim=0)
        y = int(labels[i])
        # PyTorch's weighted smoothing: the target term weighted by its class, the spread term by each class
        total = total + (1 - cfg.label_smoothing) * weights[y] * -logp[y]
        total = total + cfg.label_smoothing / 3 * sum(weights[c] * -logp[c] for c in range(3))
    grads = torch.autograd.grad(total / len(step), [w, b])
    total = total.detach()
    norm = torch.sqrt(sum((g ** 2).sum() for g in grads))
    scale = min(1.0, max_grad_norm / (float(norm) + 1e-6)) if max_grad_norm is not None else 1.0
    if max_grad_norm is not None:
        assert norm > max_grad_norm, "the case must need clipping"

    ctx = _step_context(cfg, model, _Examples(inputs, labels), tmp_path)
    mean_loss = train_epoch(ctx, 0, [step])
    assert mean_loss == pytest.approx(float(total) / len(step), rel=1e-5)
    moved = [before_p - after_p.detach() for before_p, after_p in zip(before, model.parameters(), strict=True)]
    for delta, grad in zip(moved, grads, strict=True):
        assert torch.allclose(delta, scale * grad, atol=1e-6)
    moved_norm = float(torch.sqrt(sum((d ** 2).sum() for d in moved)))
    assert moved_norm == pytest.approx(min(float(norm), max_grad_norm or math.inf), rel=1e-4)
    assert ctx.state.global_step == 1


def test_a_sample_that_cannot_be_read_is_left_out_of_its_step_and_named(tmp_path: Path) -> None:
    class WithAGap(_Examples):
        def __getitem__(self, i: int) -> Example | SkippedClip:
            return SkippedClip(i, f"{i}.mp4", "gone") if i == 1 else super().__getitem__(i)

    torch.manual_seed(0)
    model = torch.nn.Linear(4, 3)
    inputs, labels = torch.randn(4, 4), torch.tensor([0, 1, 2, 0])
    with torch.no_grad():
        rows = _log_probs(model(inputs))
    ctx = _step_context(TrainConfig(batch_size=4, accumulation_steps=1, num_epochs=1), model,
                        WithAGap(inputs, labels), tmp_path)
    loss = train_epoch(ctx, 0, [[0, 1, 2, 3]])
    assert ctx.state.runtime_skipped == {"1.mp4": "could not be decoded during training"}
    readable = [0, 2, 3]
    assert loss == pytest.approx(sum(-rows[i][int(labels[i])] for i in readable) / 3, rel=1e-6)


def test_a_loss_that_stops_being_finite_says_where_and_what_to_try(tmp_path: Path) -> None:
    from vjepa_tune.errors import NonFiniteLoss

    model = torch.nn.Linear(4, 3)
    with torch.no_grad():
        model.weight.fill_(float("nan"))
    ctx = _step_context(TrainConfig(batch_size=2, accumulation_steps=1, num_epochs=1), model,
                        _Examples(torch.randn(2, 4), torch.tensor([0, 1])), tmp_path)
    with pytest.raises(NonFiniteLoss, match="became nan at epoch 1, optimizer step 1; no epoch finished"):
        train_epoch(ctx, 0, [[0, 1]])


# ------------------------------------------------------------------------------------------------ batches
def test_read_ahead_yields_every_batch_in_order_and_raises_a_failed_read_where_it_is_used() -> None:
    readers: set[str] = set()

    class Items(torch.utils.data.Dataset):
        def __len__(self) -> int:
            return 6

        def __getitem__(self, i: int) -> int:
            readers.add(threading.current_thread().name)
            if i == 5:
                raise OSError("entry 5 is gone")
            return i

    planned = [[0, 1], [2], [3, 4]]
    assert list(read_ahead_batches(Items(), planned, list)) == [[0, 1], [2], [3, 4]]
    assert all(name.startswith("read-ahead") for name in readers)
    assert list(read_ahead_batches(Items(), [], list)) == []
    got = read_ahead_batches(Items(), [[0], [5], [1]], list)
    assert next(got) == [0]
    with pytest.raises(OSError, match="entry 5"):
        next(got)


def test_reading_ahead_leaves_the_random_stream_as_a_dataloader_leaves_it() -> None:
    """Dropout masks after the loader is made must not depend on whether batches come read ahead or loaded."""
    dataset = _Examples(torch.arange(10.0).reshape(5, 2), torch.tensor([0, 1, 2, 0, 1]))
    draws, seen = [], []
    for read_ahead in (False, True):
        torch.manual_seed(0)
        loader = iter(batches(dataset, [[0, 1], [2, 3, 4]], 0, read_ahead))
        draws.append(torch.rand(3))
        got: list[Batch] = list(loader)
        seen.append([(b.index.tolist(), b.labels.tolist(), b.inputs.tolist()) for b in got])
    assert torch.equal(draws[0], draws[1])
    assert seen[0] == seen[1] == [([0, 1], [0, 1], [[0.0, 1.0], [2.0, 3.0]]),
                                  ([2, 3, 4], [2, 0, 1], [[4.0, 5.0], [6.0, 7.0], [8.0, 9.0]])]

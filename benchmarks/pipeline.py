"""3. Input pipeline: the fast path vs the classic per-sample Dataset + DataLoader, images/s.

Same data (CIFAR-shaped), same pad-4 crop + flip + normalization, same batch size. Measured
two ways: the pipeline alone (batches produced and moved to the training device), and a full
ResNet-20 training step fed by each (where on a CPU the model dominates). The classic
pipeline runs with ``workers`` DataLoader processes (0 = in the main process).
"""

from __future__ import annotations

import time
from typing import Any

import torch
import torch.nn.functional as F

from benchmarks.common import BenchCIFAR, cifar_like, median, sgd, sync, write
from scnet.data.classic import ClassicDataModule
from scnet.models import CifarResNet


def _loaders(dm: BenchCIFAR, workers: int):
    fast = dm.train_dataloader()
    classic = ClassicDataModule(dm, num_workers=workers)
    return fast, classic.train_dataloader()


def data_only(loader, device: torch.device, max_batches: int) -> float:
    """Images/s of producing batches on ``device`` (one pass of ``max_batches``)."""
    sync(device)
    start, n = time.perf_counter(), 0
    for i, (x, _y) in enumerate(loader):
        x = x.to(device, non_blocking=True)
        n += len(x)
        if i + 1 == max_batches:
            break
    sync(device)
    return n / (time.perf_counter() - start)


def with_model(loader, device: torch.device, steps: int) -> float:
    torch.manual_seed(0)
    model = CifarResNet(depth=20).to(device)
    opt = sgd(model)
    it = iter(loader)
    x, y = next(it)  # warm-up step (allocator), not timed
    F.cross_entropy(model(x.to(device)), y.to(device)).backward()
    sync(device)
    start, n = time.perf_counter(), 0
    for _ in range(steps):
        x, y = next(it)
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
        opt.step()
        n += len(x)
    sync(device)
    return n / (time.perf_counter() - start)


def run(
    batch: int = 128,
    n_images: int = 10240,
    steps: int = 4,
    workers: int = 2,
    rounds: int = 3,
    quick: bool = False,
) -> dict[str, Any]:
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if quick:
        n_images, steps, rounds = 5120, 3, 2
    splits, source = cifar_like(n_images)
    dm = BenchCIFAR(splits, batch_size=batch, augment=True)
    dm.setup("fit")
    rows: dict[str, dict[str, float]] = {}
    for name, _w in (("classic, 0 workers", 0), (f"classic, {workers} workers", workers)):
        rows[name] = {}
    rows["fast"] = {}
    n_batches = n_images // batch
    for _ in range(rounds):  # all three in turn, every round; medians over rounds
        fast, classic0 = _loaders(dm, 0)
        _, classicw = _loaders(dm, workers)
        for name, loader in (
            ("fast", fast),
            ("classic, 0 workers", classic0),
            (f"classic, {workers} workers", classicw),
        ):
            rows[name].setdefault("data_only_img_s_all", []).append(
                data_only(loader, device, n_batches)
            )
            rows[name].setdefault("train_img_s_all", []).append(with_model(loader, device, steps))
    for row in rows.values():
        row["data_only_img_s"] = median(row["data_only_img_s_all"])
        row["train_img_s"] = median(row["train_img_s_all"])
    best_classic = max(
        (r for k, r in rows.items() if k != "fast"), key=lambda r: r["data_only_img_s"]
    )
    result = {
        "batch": batch,
        "device": str(device),
        "data": source,
        "images_per_pass": n_batches * batch,
        "rows": rows,
        "data_only_speedup": rows["fast"]["data_only_img_s"] / best_classic["data_only_img_s"],
        "train_speedup": rows["fast"]["train_img_s"] / best_classic["train_img_s"],
        "target_gpu": 3.0,
    }
    write("pipeline", result)
    return result


if __name__ == "__main__":
    print(run(quick=True))

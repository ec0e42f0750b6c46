"""Seed 003 probe: how β (leaky-ReLU slope) and c (max-norm) act on a 100-layer PlainNet.

    OMP_NUM_THREADS=1 python docs/results/gradient_lab/probe_plainnet.py init
    OMP_NUM_THREADS=1 python docs/results/gradient_lab/probe_plainnet.py rows RUN_DIR...

``init``: on 256 digits (seed 0), the first/last hidden weight-gradient-norm ratio at init
for each β, and the row norms ‖w_j‖ the uniform init gives (what a max-norm c must undercut
to bind). ``rows``: the largest and median row norm of the hidden layers in each run dir's
``checkpoints/last.ckpt`` (after training), and the run's test accuracy.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
from sklearn.datasets import load_digits

from scnet.models.plainnet import PlainNet


def digits(n: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
    x, y = load_digits(return_X_y=True)
    x = torch.tensor(x[:n], dtype=torch.float32).view(-1, 1, 8, 8) / 16.0
    return x, torch.tensor(y[:n])


def grad_ratio(beta: float, depth: int = 100, max_norm: float | None = None) -> float:
    torch.manual_seed(0)
    net = PlainNet(depth=depth, beta=beta, max_norm=max_norm, input_shape=(1, 8, 8))
    x, y = digits()
    torch.nn.functional.cross_entropy(net(x), y).backward()
    return float(net.layers[0].weight.grad.norm() / net.layers[-1].weight.grad.norm())


def row_norms(weights: list[torch.Tensor]) -> tuple[float, float]:
    norms = torch.cat([w.detach().flatten(1).norm(dim=1) for w in weights])
    return float(norms.max()), float(norms.median())


def main(argv: list[str]) -> None:
    if argv[0] == "init":
        for beta in (0.01, 0.2, 0.5, 0.7):
            print(f"beta={beta}: first/last hidden weight-grad norm at init {grad_ratio(beta):.3g}")
        torch.manual_seed(0)
        net = PlainNet(depth=100, max_norm=None, input_shape=(1, 8, 8))
        hi, med = row_norms([layer.weight for layer in net.layers[1:]])
        print(f"uniform init, hidden rows (n_in=50): max ||w_j|| {hi:.3f}, median {med:.3f}")
        return
    for run in map(Path, argv[1:]):
        state = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu")["state_dict"]
        hidden = [v for k, v in state.items() if ".layers." in k and k.endswith("weight")][1:]
        hi, med = row_norms(hidden)
        acc = json.loads((run / "result.json").read_text())["metrics"].get("test/acc")
        print(f"{run.name}: test/acc {acc}, hidden rows max ||w_j|| {hi:.3f}, median {med:.3f}")


if __name__ == "__main__":
    main(sys.argv[1:])

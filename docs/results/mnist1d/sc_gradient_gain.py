"""How much the SC (w = 0.2, k = 2) scales the first and last conv's weight gradient at init.

    python docs/results/mnist1d/sc_gradient_gain.py      # 1-D ResNet-20/56/110, 64 MNIST-1D inputs

One forward/backward per setting of a freshly initialized (seed 0) 1-D ResNet on the first
64 training signals; prints ‖∇W‖ with the SC attached divided by ‖∇W‖ without it.
"""

from __future__ import annotations

import torch

from scnet.data.mnist1d import load_arrays
from scnet.models import CifarResNet, tap_shapes
from scnet.sc import ShortCircuit, plan


def grad_norms(model: CifarResNet, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    model.zero_grad()
    torch.nn.functional.cross_entropy(model(x), y).backward()
    last = model.layer3[-1].conv2.weight.grad.norm().item()
    return model.conv1.weight.grad.norm().item(), last


def main() -> None:
    arrays = load_arrays("data")
    x = torch.from_numpy(arrays["x"][:64]).unsqueeze(1)
    y = torch.from_numpy(arrays["y"][:64])
    print("| depth | strategy | connections | stem ‖∇W‖ SC/plain | last conv SC/plain |")
    print("|---|---|---|---|---|")
    for depth in (20, 56, 110):
        torch.manual_seed(0)
        model = CifarResNet(depth=depth, input_shape=(1, 40))
        plain = grad_norms(model, x, y)
        for strategy, rear in (("multi", None), ("single", None), ("single", 5)):
            connections = plan(tap_shapes(model, x), k=2, strategy=strategy, rear=rear)
            with ShortCircuit(model.sc_taps(), connections, weight=0.2):
                sc = grad_norms(model, x, y)
            name = "first_blob" if rear else strategy  # the sc=... option it is
            print(f"| {depth} | {name} | {len(connections)} | {sc[0] / plain[0]:.1f} | "
                  f"{sc[1] / plain[1]:.2f} |")  # fmt: skip


if __name__ == "__main__":
    main()

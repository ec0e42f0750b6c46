"""5. GPU: ResNet-20/56/110 epoch time and images/s on CIFAR-10, and GPU-hours of ``table2``.

    python -m benchmarks.gpu_epoch                   # needs CUDA; CIFAR-10 under data/ or random
    python -m benchmarks.gpu_epoch --epochs 2 --depths 20 56 110 --sc on off --compile off on
    python -m benchmarks.gpu_epoch --dry             # CPU, tiny: checks every variant runs

Each configuration trains ``--epochs`` epochs of 50k images (the first is warm-up: cuDNN
autotune, allocator) on the fast path with channels_last + bf16 autocast, sc multi propagate
or off, batch 128, plus one pass over the 10k test images per epoch (as a run validates on
the test set). GPU-hours for the table2 sweep = sum over its grid of (epochs per run x
measured epoch time) x seeds; ResNet-1202 is extrapolated linearly in depth from 110 (it is
stated as such). Written to ``benchmarks/results/gpu_epoch.json``.

``--compile on`` adds ``torch.compile``-d variants (inductor; the SC compiles with the model,
scnet/sc.py): their first epoch includes the compile, so ``compile_s`` = first epoch minus
the steady one. ``--dry`` runs every variant for two tiny batches on CPU (ResNet-8, inductor
replaced by Dynamo's eager backend) and writes nothing: the no-GPU check that the script
still imports and wires (tests/test_sc_compile.py).
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import torch
import torch.nn.functional as F

from benchmarks.common import BenchCIFAR, cifar_like, median, write
from scnet.lit.short_circuit import install_short_circuit
from scnet.models import CifarResNet

SC = {
    "on": {"enabled": True, "k": 2, "strategy": "multi", "mode": "propagate", "weight": 0.2},
    "off": {"enabled": False},
}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def epoch_time(
    depth: int,
    sc: str,
    dm: Any,
    epochs: int,
    device: torch.device,
    compile_backend: str | None = None,
) -> dict[str, Any]:
    torch.manual_seed(0)
    torch._dynamo.reset()
    model = CifarResNet(depth=depth).to(device).to(memory_format=torch.channels_last)
    install_short_circuit(model, SC[sc], torch.zeros(2, 3, 32, 32, device=device))
    run = torch.compile(model, backend=compile_backend) if compile_backend else model
    opt = torch.optim.SGD(
        model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4, nesterov=False
    )
    train, test = dm.train_dataloader(), dm.test_dataloader()
    times, images = [], 0
    for _ in range(epochs):
        _sync(device)
        start = time.perf_counter()
        model.train()
        images = 0
        for x, y in train:
            x = x.contiguous(memory_format=torch.channels_last)
            with torch.autocast(device.type, dtype=torch.bfloat16):
                loss = F.cross_entropy(run(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            images += len(x)
        model.eval()
        with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16):
            for x, _y in test:
                run(x.contiguous(memory_format=torch.channels_last))
        _sync(device)
        times.append(time.perf_counter() - start)
    steady = median(times[1:]) if len(times) > 1 else times[0]
    return {
        "epoch_s": steady,
        "train_img_s": images / steady,
        "epochs_all": times,
        "compile_s": times[0] - steady if compile_backend and len(times) > 1 else None,
    }


def dry_run() -> None:
    """Every variant, two batches of 8 on CPU, Dynamo's eager backend: imports and wiring only."""
    g = torch.Generator().manual_seed(0)
    batches = [(torch.randn(8, 3, 32, 32, generator=g), torch.randint(0, 10, (8,))) for _ in "ab"]

    class Tiny:
        def train_dataloader(self) -> list:
            return batches

        def test_dataloader(self) -> list:
            return batches[:1]

    for compiled in (False, True):
        for sc in SC:
            row = epoch_time(8, sc, Tiny(), 1, torch.device("cpu"), "eager" if compiled else None)
            print(f"resnet8 {variant_name(sc, compiled)}: {row['epoch_s']:.2f} s (dry, CPU)")


def variant_name(sc: str, compiled: bool) -> str:
    return f"{'compiled ' if compiled else ''}sc={sc}"


def table2_gpu_hours(
    per_depth_epoch_s: dict[int, float], epochs: int = 164, seeds: int = 3
) -> dict[str, Any]:
    """The table2 grid: depths 20..1202 x sc on/off x seeds, ``epochs`` each (He et al.: 64k it ~ 164 ep)."""
    depths = [20, 32, 44, 56, 110, 1202]
    known = sorted(per_depth_epoch_s)
    slope = (per_depth_epoch_s[known[-1]] - per_depth_epoch_s[known[0]]) / (known[-1] - known[0])

    def estimate(d: int) -> float:
        if d in per_depth_epoch_s:
            return per_depth_epoch_s[d]
        return per_depth_epoch_s[known[0]] + slope * (d - known[0])  # linear in depth

    hours = {d: 2 * seeds * epochs * estimate(d) / 3600 for d in depths}
    return {
        "epochs_per_run": epochs,
        "seeds": seeds,
        "per_depth_hours": hours,
        "total_hours": sum(hours.values()),
        "note": "depths not measured are interpolated/extrapolated linearly in depth",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--depths", type=int, nargs="+", default=[20, 56, 110])
    parser.add_argument("--sc", nargs="+", default=["on", "off"], choices=list(SC))
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--compile", nargs="+", default=["off", "on"], choices=["off", "on"])
    parser.add_argument("--dry", action="store_true", help="CPU smoke run of every variant")
    args = parser.parse_args()
    if args.dry:
        dry_run()
        return
    if not torch.cuda.is_available():
        raise SystemExit("gpu_epoch: no CUDA device visible; this benchmark needs a GPU")
    device = torch.device("cuda")
    torch.backends.cudnn.benchmark = True
    splits, source = cifar_like(50_000, 10_000)
    dm = BenchCIFAR(splits, batch_size=args.batch, eval_batch_size=1000, augment=True)
    dm.setup("fit")
    # Place the splits on the GPU once (what the Trainer's device does in a run).
    dm._device = lambda: device  # type: ignore[method-assign]
    rows: dict[str, Any] = {}
    for depth in args.depths:
        for compiled in [c == "on" for c in args.compile]:
            for sc in args.sc:
                name = variant_name(sc, compiled)
                rows[f"resnet{depth} {name}"] = row = epoch_time(
                    depth, sc, dm, args.epochs, device, "inductor" if compiled else None
                )
                print(
                    f"ResNet-{depth} {name}: {row['epoch_s']:.2f} s/epoch, "
                    f"{row['train_img_s']:.0f} img/s",
                    flush=True,
                )
    first = variant_name(args.sc[0], args.compile[0] == "on")
    per_depth = {d: rows[f"resnet{d} {first}"]["epoch_s"] for d in args.depths}
    cost = table2_gpu_hours(per_depth) if len(per_depth) > 1 else None
    if cost:
        print(
            f"table2 sweep: ~{cost['total_hours']:.1f} GPU-hours on {torch.cuda.get_device_name(0)}"
        )
    write(
        "gpu_epoch",
        {
            "data": source,
            "batch": args.batch,
            "rows": rows,
            "table2": cost,
            "settings": "fast path, channels_last, bf16 autocast, cudnn.benchmark; "
            "compiled = torch.compile(inductor), SC included",
        },
    )


if __name__ == "__main__":
    main()

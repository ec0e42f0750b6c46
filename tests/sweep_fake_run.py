"""A fast stand-in for ``python -m scnet.cli.run`` used by the sweep engine tests.

Selected with SCNET_SWEEP_RUNNER=<this file>. It honours the run-dir contract the engine relies
on (result.json, checkpoints/last.ckpt, metrics.csv, exit code) without importing Lightning,
and appends one line per invocation to ``<run dir>/invocations.log`` so tests can count runs.
Behaviour: sleeps FAKE_SLEEP seconds (checkpointing halfway); the seed named by FAKE_HOLD_SEED
(``*``: every seed) then waits until the file FAKE_HOLD_UNTIL exists (so a test can keep one trial running for as
long as it needs); ``optim.lr=1e30`` fails like a NaN loss does in scnet-run.

Overlap detector, independent of the engine's run-dir lock: each invocation holds its own
non-blocking ``flock`` on ``<run dir>/.fake_exclusive`` while it "trains". If another process
holds it, two trainings of one run dir overlap: it logs ``{"overlap": true}`` and exits 3.
SIGTERM/SIGINT are logged (``{"signal": NAME}``) and end it like scnet-run (exit 128+n).
"""

import fcntl
import json
import os
import signal
import sys
import time
from pathlib import Path


def unquote(value: str) -> str:
    """The engine quotes path values (``key='path'``, Hydra's grammar); read them as Hydra would."""
    if len(value) >= 2 and value[0] == value[-1] == "'":
        return value[1:-1].replace("\\'", "'")
    return value


args = {k: unquote(v) for k, v in (a.split("=", 1) for a in sys.argv[1:])}
run_dir = Path(args["hydra.run.dir"])
run_dir.mkdir(parents=True, exist_ok=True)


def log(entry: dict) -> None:
    with open(run_dir / "invocations.log", "a") as fh:
        fh.write(json.dumps({"pid": os.getpid(), **entry}) + "\n")


exclusive = open(run_dir / ".fake_exclusive", "a")  # noqa: SIM115 (held until exit)
try:
    fcntl.flock(exclusive, fcntl.LOCK_EX | fcntl.LOCK_NB)
except BlockingIOError:
    log({"overlap": True})
    sys.exit(3)


def stopped(signum: int, _frame) -> None:
    log({"signal": signal.Signals(signum).name})
    sys.exit(128 + signum)


signal.signal(signal.SIGTERM, stopped)
signal.signal(signal.SIGINT, stopped)
log({"ckpt_path": args.get("ckpt_path")})
sleep = float(os.environ.get("FAKE_SLEEP", "0"))
time.sleep(sleep / 2)
(run_dir / "checkpoints").mkdir(exist_ok=True)
(run_dir / "checkpoints" / "last.ckpt").write_text("fake")
time.sleep(sleep / 2)
if os.environ.get("FAKE_HOLD_SEED") in (args.get("seed"), "*"):
    release = Path(os.environ["FAKE_HOLD_UNTIL"])
    while not release.exists():
        time.sleep(0.05)
seed = int(args.get("seed", 0))
on = args.get("sc", "on") == "on"
(run_dir / "metrics.csv").write_text(
    "epoch,step,train/loss,val/acc\n0,1,2.0,\n0,1,,0.5\n1,2,1.0,\n1,2,,0.6\n"
)
if float(args.get("optim.lr", "0.1")) > 1e20:
    error = "FloatingPointError: NaN loss at step 3 (epoch 0); lower optim.lr, add optim.warmup_epochs or set trainer.gradient_clip_val"
    result = {"status": "failed", "metrics": {}, "error": error, "seed": seed, "duration_s": sleep}
    (run_dir / "result.json").write_text(json.dumps(result))
    print(f"scnet-run: error: {error}", file=sys.stderr)
    sys.exit(1)
acc = 0.80 + 0.01 * seed + (0.02 if on else 0.0)
result = {
    "status": "completed",
    "metrics": {"test/acc": acc, "train/loss": 1.0 - acc},
    "seed": seed,
    "duration_s": sleep,
    "params": 1,
    "sc": [],
}
(run_dir / "result.json").write_text(json.dumps(result))
log({"done": True})

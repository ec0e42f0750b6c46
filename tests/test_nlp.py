"""SCBERT / SCRoBERTa: tiny random BERT and RoBERTa with locally trained tokenizers, the real
DREAM and MCScript file formats written to tmp_path, SC gradients on encoder layers against
the DESIGN.md definitions, and an end-to-end run on the real (offline) MiniLM weights."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import lightning as L
import pandas as pd
import pytest
import torch

from scnet.data import base as data_base
from scnet.data import mcqa
from scnet.errors import ConfigError, DataError
from scnet.lit.multiple_choice import MultipleChoiceModule
from scnet.models.transformer import MultipleChoiceTransformer, resolve_pretrained
from scnet.sc import ShortCircuit

COLORS = ["red", "blue", "green"]
TEXTS = [
    "M: I bought a red car yesterday.",
    "W: Really? That is nice. Was it expensive?",
    "M: Not at all, and the blue one was sold out.",
    "What color is the car? red blue green",
    "Tom went to the shop to buy some bread and milk for breakfast.",
    "Where did Tom go? to the shop to the park",
]
TINY = {"hidden_size": 32, "num_hidden_layers": 4, "num_attention_heads": 4,
        "intermediate_size": 64, "max_position_embeddings": 80}  # fmt: skip


# ----------------------------------------------------------------------------- builders
def bert_tokenizer(folder: Path) -> Path:
    """A WordPiece tokenizer trained on TEXTS, saved as a transformers tokenizer dir."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    special = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tok.train_from_iterator(
        TEXTS, trainers.WordPieceTrainer(vocab_size=150, special_tokens=special)
    )
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", 2), ("[SEP]", 3)],
    )  # fmt: skip
    PreTrainedTokenizerFast(
        tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]",
        sep_token="[SEP]", mask_token="[MASK]",
        model_input_names=["input_ids", "token_type_ids", "attention_mask"],
    ).save_pretrained(folder)  # fmt: skip
    return folder


def roberta_tokenizer(folder: Path) -> Path:
    """A byte-level BPE tokenizer (RoBERTa's special tokens and ids) trained on TEXTS."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    special = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]  # pad id 1 = RobertaConfig default
    trainer = trainers.BpeTrainer(
        vocab_size=400, special_tokens=special, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tok.train_from_iterator(TEXTS, trainer)
    tok.post_processor = processors.RobertaProcessing(("</s>", 2), ("<s>", 0))
    PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>",
        pad_token="<pad>", cls_token="<s>", sep_token="</s>", mask_token="<mask>",
    ).save_pretrained(folder)  # fmt: skip
    return folder


@pytest.fixture(scope="module")
def tokenizers_dir(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("tokenizers")
    return {
        "bert": bert_tokenizer(root / "bert"),
        "roberta": roberta_tokenizer(root / "roberta"),
    }


def tiny_model(kind: str, vocab_size: int, seed: int = 0) -> MultipleChoiceTransformer:
    torch.manual_seed(seed)
    config = {"model_type": kind, "vocab_size": vocab_size, **TINY}
    if kind == "roberta":
        config["pad_token_id"] = 1
    return MultipleChoiceTransformer(config=config, input_shape=[3, 32], num_classes=3)


def dream_entry(i: int, split: str = "train") -> list:
    color = COLORS[i % 3]
    turns = [f"M: I bought a {color} car yesterday.", "W: Really? That is nice."]
    questions = [{"question": "What color is the car?", "choice": COLORS, "answer": color}]
    return [turns, questions, f"{split}-{i}"]


def write_dream(root: Path, n: int = 6) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for split in ("train", "dev", "test"):
        data = [dream_entry(i, split) for i in range(n)]
        (root / f"{split}.json").write_text(json.dumps(data))
    return root


MCSCRIPT = """<?xml version='1.0' encoding='utf-8'?>
<data>
  <instance id="{iid}" scenario="going grocery shopping">
    <text>Tom went to the shop to buy some bread and milk for breakfast.</text>
    <questions>
      <question id="0" text="Where did Tom go?" type="text">
        <answer correct="{c0}" id="0" text="to the shop" />
        <answer correct="{c1}" id="1" text="to the park" />
      </question>
    </questions>
  </instance>
</data>
"""


def write_mcscript(root: Path, c0: str = "True", c1: str = "False") -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for i, name in enumerate(("train-data.xml", "dev-data.xml", "test-data.xml")):
        (root / name).write_text(MCSCRIPT.format(iid=i, c0=c0, c1=c1))
    return root


# ----------------------------------------------------------------------------- loaders
def test_read_dream_accepts_the_release_format(tmp_path: Path) -> None:
    items = mcqa.read_dream(write_dream(tmp_path, n=4) / "dev.json")
    assert len(items) == 4
    first = items[0]
    assert first.id == "dev-0-0" and first.options == tuple(COLORS) and first.label == 0
    assert first.passage == "M: I bought a red car yesterday.\nW: Really? That is nice."
    assert [q.label for q in items] == [0, 1, 2, 0]


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("[[", "corrupt DREAM file"),
        (json.dumps({"not": "a list"}), "expected a JSON list"),
        (json.dumps([[["M: hi"], [{"question": "q?", "choice": COLORS, "answer": "pink"}], "d-7"]]),
         "question d-7-0: answer 'pink' is not among its choices"),
        (json.dumps([[["M: hi"], [{"question": "q?", "answer": "red"}], "d-8"]]),
         "question d-8-0: missing key 'choice'"),
        (json.dumps([[["M: hi"], []]]), "item 0: expected [turns, questions, id]"),
    ],
)  # fmt: skip
def test_read_dream_rejects_malformed_files(tmp_path: Path, content: str, expected: str) -> None:
    path = tmp_path / "train.json"
    path.write_text(content)
    with pytest.raises(DataError) as err:
        mcqa.read_dream(path)
    assert expected in str(err.value) and str(path) in str(err.value)


def test_read_mcscript_accepts_the_release_format(tmp_path: Path) -> None:
    items = mcqa.read_mcscript(write_mcscript(tmp_path, c0="False", c1="True") / "dev-data.xml")
    assert len(items) == 1
    item = items[0]
    assert item.id == "1-0" and item.question == "Where did Tom go?"
    assert item.options == ("to the shop", "to the park") and item.label == 1
    assert item.passage.startswith("Tom went to the shop")


@pytest.mark.parametrize(
    ("c0", "c1", "expected"),
    [("False", "False", "0 correct"), ("True", "True", "2 correct")],
)
def test_read_mcscript_needs_exactly_one_correct_answer(
    tmp_path: Path, c0: str, c1: str, expected: str
) -> None:
    path = write_mcscript(tmp_path, c0=c0, c1=c1) / "train-data.xml"
    with pytest.raises(DataError, match=f"train-data.xml, question 0-0: .*{expected}"):
        mcqa.read_mcscript(path)


def test_read_mcscript_rejects_bad_xml(tmp_path: Path) -> None:
    path = tmp_path / "dev-data.xml"
    path.write_text("<data><instance id='1'><text>unclosed")
    with pytest.raises(DataError, match="corrupt MCScript XML file .*dev-data.xml"):
        mcqa.read_mcscript(path)


def test_missing_files_name_the_expected_files(tmp_path: Path) -> None:
    (tmp_path / "train.json").write_text("[]")
    dm = mcqa.DreamDataModule(root=tmp_path, tokenizer="unused")
    with pytest.raises(
        DataError, match=r"missing dev.json, test.json .*train.json, dev.json, test.json"
    ):
        dm.setup("fit")
    dm = mcqa.SemEval2018DataModule(root=tmp_path / "none", tokenizer="unused")
    with pytest.raises(DataError, match="missing train-data.xml, dev-data.xml, test-data.xml"):
        dm.setup("fit")


def test_wrong_number_of_options_is_rejected(tmp_path: Path, tokenizers_dir) -> None:
    root = write_dream(tmp_path)
    bad = [[["M: hi"], [{"question": "q?", "choice": ["a", "b"], "answer": "a"}], "x-1"]]
    (root / "test.json").write_text(json.dumps(bad))
    dm = mcqa.DreamDataModule(root=root, tokenizer=str(tokenizers_dir["bert"]))
    with pytest.raises(DataError, match="test.json, question x-1-0: 2 options, expected 3"):
        dm.setup("fit")


def test_dream_download_fetches_the_three_release_files(tmp_path: Path, monkeypatch) -> None:
    fetched = []

    def fake_fetch(url: str, dest: Path, timeout: float = 60.0) -> None:
        fetched.append(url)
        dest.write_text(json.dumps([dream_entry(0)]))

    monkeypatch.setattr(data_base, "_fetch", fake_fetch)
    dm = mcqa.DreamDataModule(root=tmp_path / "dream", download=True)
    dm.download_data()
    base_url = "https://raw.githubusercontent.com/nlpdata/dream/master/data/"
    assert fetched == [base_url + n for n in ("train.json", "dev.json", "test.json")]
    dm.check_files()  # all three present now


def test_semeval_download_extracts_the_xml_files(tmp_path: Path, monkeypatch) -> None:
    source = write_mcscript(tmp_path / "src")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for path in sorted(source.iterdir()):
            zf.write(path, f"MCScript/{path.name}")

    monkeypatch.setattr(
        data_base, "_fetch", lambda url, dest, timeout=60.0: dest.write_bytes(buffer.getvalue())
    )
    dm = mcqa.SemEval2018DataModule(root=tmp_path / "semeval", download=True)
    dm.download_data()
    assert (tmp_path / "semeval" / "dev-data.xml").read_text() == (
        source / "dev-data.xml"
    ).read_text()


def test_truncation_trims_the_passage_and_keeps_question_and_option(tokenizers_dir) -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tokenizers_dir["bert"])
    item = mcqa.Question("q", " ".join(TEXTS[:3] * 5), "What color is the car?", tuple(COLORS), 0)
    features, labels = mcqa.encode(tokenizer, [item], max_length=24)
    assert labels == [0] and len(features[0]) == 3
    for pair, option in zip(features[0], COLORS, strict=True):
        assert len(pair["input_ids"]) == 24
        text = tokenizer.decode(pair["input_ids"])
        assert text.endswith(f"[SEP] what color is the car ? {option} [SEP]")
        assert text.startswith("[CLS] m : i bought")  # the passage's head, trimmed at its tail


def test_batches_are_b_by_choices_by_t(tmp_path: Path, tokenizers_dir) -> None:
    dm = mcqa.DreamDataModule(
        root=write_dream(tmp_path), tokenizer=str(tokenizers_dir["bert"]), max_length=32,
        batch_size=4, eval_batch_size=5,
    )  # fmt: skip
    dm.setup("fit")
    inputs, labels = next(iter(dm.train_dataloader()))
    assert set(inputs) == {"input_ids", "attention_mask", "token_type_ids"}
    assert inputs["input_ids"].shape[:2] == (4, 3) and inputs["input_ids"].shape[2] <= 32
    assert inputs["attention_mask"].shape == inputs["input_ids"].shape and labels.shape == (4,)
    padded = inputs["attention_mask"] == 0
    assert (inputs["input_ids"][padded] == 0).all()
    val_inputs, _ = next(iter(dm.val_dataloader()))
    assert val_inputs["input_ids"].shape[0] == 5
    assert dm.input_shape == (3, 32) and dm.num_classes == 3 and dm.task == "multiple_choice"


# ----------------------------------------------------------------------------- SC gradients
def grads_of(model: torch.nn.Module, inputs: dict, labels: torch.Tensor) -> dict[str, torch.Tensor]:
    model.zero_grad(set_to_none=True)
    loss = torch.nn.functional.cross_entropy(model(**inputs), labels)
    loss.backward()
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def example_batch(kind: str, vocab_size: int) -> tuple[dict, torch.Tensor]:
    gen = torch.Generator().manual_seed(1)
    ids = torch.randint(5, vocab_size, (2, 3, 12), generator=gen)
    mask = torch.ones_like(ids)
    mask[:, :, 9:] = 0  # some padding, so the attention mask matters
    inputs = {"input_ids": ids, "attention_mask": mask}
    if kind == "bert":
        inputs["token_type_ids"] = (torch.arange(12) >= 6).long().expand_as(ids)
    return inputs, torch.tensor([0, 2])


@pytest.mark.parametrize("kind", ["bert", "roberta"])
def test_propagate_gradient_matches_the_definition(kind: str) -> None:
    """δ at the front layer output = plain δ + w·δ at the rear output; every param follows."""
    model = tiny_model(kind, vocab_size=100).eval()  # eval: dropout off, so runs compare
    inputs, labels = example_batch(kind, 100)
    layers, weight = model.sc_taps(), 0.2
    front, rear = layers[1], layers[3]  # taps 2 and 4

    seen: dict[str, torch.Tensor] = {}

    def record(name: str):
        def hook(_module, _args, output):
            output.register_hook(lambda g: seen.__setitem__(name, g.clone()))

        return hook

    handles = [
        front.register_forward_hook(record("front")),
        rear.register_forward_hook(record("rear")),
    ]
    plain = grads_of(model, inputs, labels)
    plain_front, plain_rear = seen["front"], seen["rear"]
    with ShortCircuit(model.sc_taps(), [(4, 2)], weight=weight, mode="propagate"):
        # Our hooks were registered first, so their gradient hooks see δ before SC adds to it;
        # re-register them after SC's to see the augmented sensitivity.
        for h in handles:
            h.remove()
        handles = [
            front.register_forward_hook(record("front")),
            rear.register_forward_hook(record("rear")),
        ]
        with_sc = grads_of(model, inputs, labels)
    for h in handles:
        h.remove()
    torch.testing.assert_close(seen["rear"], plain_rear)
    torch.testing.assert_close(seen["front"], plain_front + weight * plain_rear)

    # Oracle for every parameter (DESIGN.md): out_r + w·(out_f − out_f.detach()).
    captured = {}
    h1 = front.register_forward_hook(lambda m, a, out: captured.__setitem__("f", out))
    h2 = rear.register_forward_hook(
        lambda m, a, out: out + weight * (captured["f"] - captured["f"].detach())
    )
    oracle = grads_of(model, inputs, labels)
    h1.remove()
    h2.remove()
    assert with_sc.keys() == oracle.keys()
    for name in oracle:
        torch.testing.assert_close(with_sc[name], oracle[name], msg=name)
    embeddings = f"model.{kind}.embeddings.word_embeddings.weight"  # below the front
    assert not torch.allclose(with_sc[embeddings], plain[embeddings])


@pytest.mark.parametrize("kind", ["bert", "roberta"])
def test_weight_only_gradient_reaches_only_the_front_layer_params(kind: str) -> None:
    """∂J/∂θ_f gains the VJP of w·δ_rear through layer f alone; nothing else changes."""
    model = tiny_model(kind, vocab_size=100).eval()
    inputs, labels = example_batch(kind, 100)
    layers, weight = model.sc_taps(), 0.2
    plain = grads_of(model, inputs, labels)
    with ShortCircuit(layers, [(4, 2)], weight=weight, mode="weight_only"):
        with_sc = grads_of(model, inputs, labels)

    # Oracle: the front recomputed on a detached input feeds w·δ_rear into its params only.
    call = {}

    def keep_inputs(module, args, kwargs, output):
        call["args"] = tuple(a.detach() if torch.is_tensor(a) else a for a in args)
        call["kwargs"] = {k: v.detach() if torch.is_tensor(v) else v for k, v in kwargs.items()}

    def add_front(module, args, output):
        again = layers[1](*call["args"], **call["kwargs"])
        again = again[0] if isinstance(again, tuple) else again
        return output + weight * (again - again.detach())

    h1 = layers[1].register_forward_hook(keep_inputs, with_kwargs=True)
    h2 = layers[3].register_forward_hook(add_front)
    oracle = grads_of(model, inputs, labels)
    h1.remove()
    h2.remove()
    front_prefix = f"model.{kind}.encoder.layer.1."
    changed = [n for n in plain if not torch.allclose(with_sc[n], plain[n])]
    assert changed and all(n.startswith(front_prefix) for n in changed)
    for name in oracle:
        torch.testing.assert_close(with_sc[name], oracle[name], msg=name)


@pytest.mark.parametrize("kind", ["bert", "roberta"])
def test_one_sc_training_step(kind: str, tmp_path: Path, tokenizers_dir) -> None:
    """The real path: tokenizer dir → DREAM loader → MC module with SC → one AdamW step."""
    from transformers import AutoTokenizer

    tok_dir = str(tokenizers_dir[kind])
    vocab = len(AutoTokenizer.from_pretrained(tok_dir))
    dm = mcqa.DreamDataModule(
        root=write_dream(tmp_path), tokenizer=tok_dir, max_length=48, batch_size=2
    )
    dm.setup("fit")
    sc = {"enabled": True, "k": 2, "strategy": "single", "weight": 0.2, "mode": "propagate"}
    optim = {"name": "adamw", "lr": 1e-3, "scheduler": "linear", "warmup_ratio": 0.1}
    module = MultipleChoiceModule(tiny_model(kind, vocab), sc, optim, dm.input_shape)
    assert module.sc_connections == [[4, 2]]
    before = {n: p.detach().clone() for n, p in module.named_parameters()}
    trainer = L.Trainer(
        max_steps=1, limit_val_batches=0, logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, accelerator="cpu",
        default_root_dir=tmp_path,
    )  # fmt: skip
    trainer.fit(module, datamodule=dm)
    assert trainer.global_step == 1
    assert torch.isfinite(trainer.callback_metrics["train/loss"])
    moved = [n for n, p in module.named_parameters() if not torch.equal(p, before[n])]
    assert any(".encoder.layer.0." in n for n in moved)  # below the front: SC reaches it


def test_mc_module_rejects_a_vision_backbone() -> None:
    from scnet.models import FCN

    backbone = FCN(depth=3, width=8, activation="relu", num_classes=3, input_shape=[4])
    with pytest.raises(ConfigError, match="cannot do multiple-choice QA"):
        MultipleChoiceModule(backbone, {"enabled": False}, {"name": "adamw"}, (3, 32))


def test_backbone_needs_pretrained_or_config() -> None:
    with pytest.raises(ConfigError, match="exactly one of backbone.pretrained"):
        MultipleChoiceTransformer()
    with pytest.raises(ConfigError, match="package 'no_such_pkg' is not installed"):
        resolve_pretrained("package:no_such_pkg/model")


# ----------------------------------------------------------------------------- config + CLI
def test_experiment_sets_paper_sc_defaults_and_sc_off_still_works() -> None:
    """The papers' recipes live in experiment/ (a backbone yaml is the network only)."""
    from scnet.cli.common import compose_config

    on = compose_config(["experiment=mcqa_bert_base", "data=dream"])
    assert (on.sc.enabled, on.sc.k, on.sc.strategy, on.sc.weight) == (True, 4, "single", 0.2)
    assert on.optim.name == "adamw" and on.optim.scheduler == "linear"
    assert on.data.tokenizer == "bert-base-uncased"
    off = compose_config(["experiment=mcqa_roberta_large", "data=semeval2018", "sc=off"])
    assert off.sc.enabled is False and off.name == "roberta-semeval2018-plain"
    vision = compose_config([])
    assert (vision.sc.k, vision.sc.strategy, vision.optim.name) == (2, "multi", "sgd")


def test_tiny_bert_run_writes_result_json(tmp_path: Path, tokenizers_dir) -> None:
    """In-process ``scnet-run`` (the CLI's execute) with a random-init BERT config."""
    from transformers import AutoTokenizer

    from scnet.cli.common import compose_config
    from scnet.cli.run import execute

    tok_dir = str(tokenizers_dir["bert"])
    vocab = len(AutoTokenizer.from_pretrained(tok_dir))
    config = json.dumps({"model_type": "bert", "vocab_size": vocab, **TINY}).replace('"', "")
    cfg = compose_config([
        "backbone=bert", "backbone.pretrained=null", f"backbone.config={config}", "data=dream",
        f"data.root={write_dream(tmp_path / 'data')}", f"data.tokenizer={tok_dir}",
        "data.max_length=32", "sc.k=2", "trainer.max_epochs=1", "trainer.accelerator=cpu",
        "trainer.enable_progress_bar=false", "logger.wandb.mode=disabled",
    ])  # fmt: skip
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    assert execute(cfg, run_dir) == 0
    result = json.loads((run_dir / "result.json").read_text())
    assert result["status"] == "completed" and result["sc"] == [[4, 2]]
    assert result["metrics"]["steps"] == 3  # 6 questions, batch 2
    assert 0.0 <= result["metrics"]["test/acc"] <= 1.0 and "val/acc_best" in result["metrics"]


@pytest.mark.slow
def test_minilm_offline_end_to_end(tmp_path: Path) -> None:
    """``scnet-run experiment=mcqa_minilm data=dream`` fine-tunes the real MiniLM weights offline."""
    root = write_dream(tmp_path / "dream", n=6)
    run_dir = tmp_path / "run"
    env = {
        **os.environ,
        "WANDB_MODE": "offline",
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
    }
    proc = subprocess.run(
        [sys.executable, "-m", "scnet.cli.run", "experiment=mcqa_minilm", "data=dream",
         f"data.root={root}", "data.max_length=64", "trainer.max_epochs=1",
         "trainer.enable_progress_bar=false", "logger.wandb.mode=disabled",
         f"hydra.run.dir={run_dir}"],
        env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads((run_dir / "result.json").read_text())
    assert result["status"] == "completed" and result["sc"] == [[6, 4]]
    assert result["params"] > 22_000_000 and result["metrics"]["steps"] == 3
    assert 0.0 <= result["metrics"]["test/acc"] <= 1.0
    metrics = pd.read_csv(run_dir / "metrics.csv")
    assert "val/acc" in metrics.columns


# ----------------------------------------------------------------------------- tables, sweeps
def synthetic_results() -> pd.DataFrame:
    rows, trial = [], 0
    for experiment, base_acc in (("mcqa_bert_base", 0.63), ("mcqa_bert_large", 0.66),
                                 ("mcqa_roberta_large", 0.85)):  # fmt: skip
        for sc in ("on", "off"):
            for seed in range(3):
                acc = base_acc + (0.01 if sc == "on" else 0.0) + 0.002 * seed
                rows.append({"trial": trial, "state": "COMPLETE", "seed": seed,
                             "experiment": experiment, "sc": sc, "test/acc": acc,
                             "val/acc_best": acc + 0.005})  # fmt: skip
                trial += 1
    rows.append({"trial": trial, "state": "FAIL", "seed": 0, "experiment": "mcqa_bert_base",
                 "sc": "on", "test/acc": None, "val/acc_best": None})  # fmt: skip
    return pd.DataFrame(rows)


def test_table3_and_table4_builders(tmp_path: Path) -> None:
    from scnet.report import nlp_tables
    from scnet.report.registry import TABLES

    assert TABLES["table3"] is nlp_tables.table3 and TABLES["table4"] is nlp_tables.table4
    files = TABLES["table3"](synthetic_results(), tmp_path, tmp_path / "out")
    assert sorted(p.suffix for p in files) == [".csv", ".md", ".tex"]
    table = pd.read_csv(tmp_path / "out" / "table3.csv", dtype=str).set_index("model")
    assert list(table.index) == ["BERT-base", "SCBERT-base", "BERT-large", "SCBERT-large",
                                 "RoBERTa-large", "SCRoBERTa-large"]  # fmt: skip
    row = table.loc["SCBERT-base"]
    assert row["n"] == "3" and row["test (ours)"] == "64.20 ± 0.20"  # the failed trial is out
    assert row["test (paper)"] == "63.3" and row["Δ test"] == "+0.90"
    assert float(row["p (Welch, test, SC vs plain)"]) < 0.01
    assert table.loc["RoBERTa-large", "dev (ours)"] == "85.70 ± 0.20"
    table4 = nlp_tables.summarize(synthetic_results(), "table4").set_index("model")
    assert table4.loc["BERT-base", "dev (paper)"] == "–"
    assert table4.loc["SCRoBERTa-large", "test (paper)"] == "94.7"
    assert "Table 3: DREAM" in (tmp_path / "out" / "table3.md").read_text()


@pytest.mark.parametrize("name", ["table3_dream", "table4_semeval"])
def test_sweeps_compose_every_grid_point(name: str) -> None:
    import itertools

    import yaml

    from scnet.cli.common import REPO_ROOT, compose_config

    sweep = yaml.safe_load((REPO_ROOT / "sweeps" / f"{name}.yaml").read_text())
    assert sweep["report"]["table"] in ("table3", "table4") and sweep["seeds"] == [0, 1, 2]
    keys = list(sweep["grid"])
    for values in itertools.product(*sweep["grid"].values()):
        overrides = [*sweep["base"], *(f"{k}={v}" for k, v in zip(keys, values, strict=True))]
        cfg = compose_config(overrides)
        assert cfg.sc.enabled == (dict(zip(keys, values, strict=True))["sc"] == "on")
        assert (cfg.sc.k, cfg.data.batch_size, cfg.data.max_length) == (4, 2, 512)
        assert cfg.optim.name == "adamw" and cfg.trainer.precision == "bf16-mixed"

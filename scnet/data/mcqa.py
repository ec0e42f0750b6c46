"""Multiple-choice reading comprehension: DREAM and SemEval-2018 Task 11 (MCScript).

Both datasets are read in their original release formats:

* **DREAM** (Sun et al., 2019; github.com/nlpdata/dream ``data/``): ``train.json``,
  ``dev.json``, ``test.json``, each a JSON list of ``[turns, questions, id]`` where ``turns``
  is the dialogue (a list of ``"M: ..."``/``"W: ..."`` strings) and each question is
  ``{"question": str, "choice": [3 str], "answer": str}`` (the answer is one of the choices).
* **MCScript** (Ostermann et al., 2018), the SemEval-2018 Task 11 data: ``train-data.xml``,
  ``dev-data.xml``, ``test-data.xml``::

      <data><instance id=".." scenario=".."><text>...</text><questions>
        <question id=".." text="..."><answer id="0" text=".." correct="True"/>...

Each question becomes ``n_choices`` (passage, question + option) pairs tokenized with the
backbone's tokenizer; truncation trims only the passage, so question and option survive
(``truncation="only_first"``). Batches are dicts of ``(B, n_choices, T)`` tensors, padded to
the longest sequence in the batch (DREAM dialogues are short, so this saves most of the 512).
"""

from __future__ import annotations

import json
import logging
import xml.etree.ElementTree as ET
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import torch
from torch import Tensor
from torch.utils.data import DataLoader

from scnet.data import base
from scnet.errors import ConfigError, DataError

log = logging.getLogger(__name__)

SPLITS = ("train", "dev", "test")


@dataclass(frozen=True)
class Question:
    """One multiple-choice item: ``options[label]`` is the correct answer."""

    id: str
    passage: str
    question: str
    options: tuple[str, ...]
    label: int


# ----------------------------------------------------------------------------- readers
def read_dream(path: Path) -> list[Question]:
    """Parse one DREAM split file; :class:`DataError` names the file and item on bad input."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise DataError(f"corrupt DREAM file {path}: {err}") from None
    if not isinstance(data, list):
        raise DataError(f"corrupt DREAM file {path}: expected a JSON list of dialogues")
    items = []
    for position, entry in enumerate(data):
        items.extend(_dream_entry(path, position, entry))
    return items


def _dream_entry(path: Path, position: int, entry: Any) -> list[Question]:
    where = f"{path}, item {position}"
    if not (isinstance(entry, list) and len(entry) == 3):
        raise DataError(f"malformed DREAM file {where}: expected [turns, questions, id]")
    turns, questions, dialogue_id = entry
    where = f"{path}, item {dialogue_id!r}"
    if not (isinstance(turns, list) and all(isinstance(t, str) for t in turns)):
        raise DataError(f"malformed DREAM file {where}: dialogue turns must be a list of strings")
    if not isinstance(questions, list):
        raise DataError(f"malformed DREAM file {where}: questions must be a list")
    passage = "\n".join(turns)
    items = []
    for number, q in enumerate(questions):
        qid = f"{dialogue_id}-{number}"
        try:
            text, choices, answer = q["question"], q["choice"], q["answer"]
        except (TypeError, KeyError) as err:
            raise DataError(
                f"malformed DREAM file {path}, question {qid}: missing key {err}"
            ) from None
        if not (isinstance(choices, list) and len(choices) >= 2):
            raise DataError(f"malformed DREAM file {path}, question {qid}: needs >= 2 choices")
        if answer not in choices:
            raise DataError(
                f"malformed DREAM file {path}, question {qid}: answer {answer!r} is not "
                "among its choices"
            )
        items.append(Question(qid, passage, str(text), tuple(choices), choices.index(answer)))
    return items


def read_mcscript(path: Path) -> list[Question]:
    """Parse one MCScript / SemEval-2018 Task 11 XML file (exactly one correct answer each)."""
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError) as err:
        raise DataError(f"corrupt MCScript XML file {path}: {err}") from None
    items = []
    for instance in root.iter("instance"):
        text = instance.findtext("text")
        iid = instance.get("id", "?")
        if text is None:
            raise DataError(f"malformed MCScript file {path}, instance {iid}: no <text>")
        for question in instance.iter("question"):
            items.append(_mcscript_question(path, iid, text.strip(), question))
    if not items:
        raise DataError(f"malformed MCScript file {path}: no <instance>/<question> elements")
    return items


def _mcscript_question(path: Path, iid: str, passage: str, question: ET.Element) -> Question:
    qid = f"{iid}-{question.get('id', '?')}"
    answers = question.findall("answer")
    correct = [a.get("correct") == "True" for a in answers]
    if len(answers) < 2 or sum(correct) != 1:
        raise DataError(
            f"malformed MCScript file {path}, question {qid}: needs >= 2 answers with exactly "
            f'one correct="True" (found {len(answers)} answers, {sum(correct)} correct)'
        )
    options = tuple(a.get("text", "") for a in answers)
    return Question(qid, passage, question.get("text", ""), options, correct.index(True))


# ----------------------------------------------------------------------------- features
def encode(
    tokenizer: Any, items: Sequence[Question], max_length: int
) -> tuple[list[list[dict[str, list[int]]]], list[int]]:
    """Tokenize every (passage, question + option) pair; trims the passage, never the QA."""
    features, labels = [], []
    for item in items:
        qas = [f"{item.question} {option}".strip() for option in item.options]
        passages = [item.passage] * len(qas)
        try:
            enc = tokenizer(passages, qas, truncation="only_first", max_length=max_length)
        except Exception:  # question + option alone exceed max_length: trim them as well
            enc = tokenizer(passages, qas, truncation="longest_first", max_length=max_length)
        keys = [k for k in ("input_ids", "attention_mask", "token_type_ids") if k in enc]
        features.append([{k: enc[k][i] for k in keys} for i in range(len(qas))])
        labels.append(item.label)
    return features, labels


class MCQADataset(torch.utils.data.Dataset):
    def __init__(self, features: list[list[dict[str, list[int]]]], labels: list[int]) -> None:
        self.features, self.labels = features, labels

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[list[dict[str, list[int]]], int]:
        return self.features[index], self.labels[index]


def make_collate(pad_id: int):
    """Pad a batch to its longest pair: ``({input_ids, attention_mask, ...}, labels)``."""

    def collate(batch: list[tuple[list[dict[str, list[int]]], int]]) -> tuple[dict, Tensor]:
        length = max(len(pair["input_ids"]) for options, _ in batch for pair in options)
        keys = list(batch[0][0][0])
        out: dict[str, Tensor] = {}
        for key in keys:
            fill = pad_id if key == "input_ids" else 0
            rows = [
                [pair[key] + [fill] * (length - len(pair[key])) for pair in options]
                for options, _ in batch
            ]
            out[key] = torch.tensor(rows, dtype=torch.long)
        return out, torch.tensor([label for _, label in batch], dtype=torch.long)

    return collate


def load_tokenizer(name: str | None) -> Any:
    """The tokenizer ``data.tokenizer`` names (``experiment=mcqa_*`` set it to the backbone's
    checkpoint, ``${backbone.pretrained}``; a data config does not read the backbone's)."""
    from transformers import AutoTokenizer

    from scnet.models.transformer import resolve_pretrained

    if not name:
        raise ConfigError(
            "data.tokenizer is not set: use experiment=mcqa_bert_base|mcqa_bert_large|"
            "mcqa_roberta_large|mcqa_minilm (it is the backbone's checkpoint) or set "
            "data.tokenizer=<hub id or dir>"
        )
    try:
        return AutoTokenizer.from_pretrained(resolve_pretrained(str(name)))
    except (OSError, ValueError) as err:
        raise ConfigError(f"data.tokenizer={name}: {str(err).splitlines()[0]}") from None


# ----------------------------------------------------------------------------- datamodules
class MCQADataModule(L.LightningDataModule):
    """Base for multiple-choice QA data: train / dev (validation) / test from ``root``.

    Subclasses set ``name``, ``files`` (split → file name), ``n_choices``, ``urls`` and
    implement :meth:`read` and :meth:`download_data`.
    """

    task = "multiple_choice"
    name = "mcqa"
    files: dict[str, str] = {}
    n_choices = 2
    release = ""

    def __init__(
        self,
        root: str | Path = "data",
        tokenizer: str | None = None,
        max_length: int = 512,
        batch_size: int = 2,
        eval_batch_size: int = 8,
        max_questions: int | None = None,
        download: bool = False,
        num_workers: int = 0,
        seed: int = 0,
    ) -> None:
        super().__init__()
        if int(max_length) < 8:
            raise ConfigError(f"data.max_length={max_length} is invalid: must be >= 8")
        for key, value in (("batch_size", batch_size), ("eval_batch_size", eval_batch_size)):
            if int(value) < 1:
                raise ConfigError(f"data.{key}={value} is invalid: must be >= 1")
        self.root = Path(root)
        self.tokenizer_name = tokenizer
        self.max_length = int(max_length)
        self.batch_size, self.eval_batch_size = int(batch_size), int(eval_batch_size)
        self.max_questions = None if max_questions is None else int(max_questions)
        self.download, self.num_workers, self.seed = bool(download), int(num_workers), int(seed)
        self._datasets: dict[str, MCQADataset] = {}
        self._pad_id = 0

    @property
    def input_shape(self) -> tuple[int, int]:
        return (self.n_choices, self.max_length)

    @property
    def num_classes(self) -> int:
        return self.n_choices

    def read(self, path: Path) -> list[Question]:
        raise NotImplementedError

    def download_data(self) -> None:
        raise NotImplementedError

    def paths(self) -> dict[str, Path]:
        return {split: self.root / name for split, name in self.files.items()}

    def check_files(self) -> None:
        missing = [p.name for p in self.paths().values() if not p.is_file()]
        if missing:
            raise DataError(
                f"{self.name}: missing {', '.join(missing)} under data.root={self.root} "
                f"(expected {', '.join(self.files.values())}; get them from {self.release} "
                "or set data.download=true)"
            )

    def setup(self, stage: str | None = None) -> None:
        """Read and tokenize all three splits once (a bad file fails before training)."""
        if self._datasets:
            return
        if self.download:
            self.download_data()
        self.check_files()
        items = {split: self.read(path) for split, path in self.paths().items()}
        empty = [str(self.paths()[split]) for split, questions in items.items() if not questions]
        if empty:  # an empty split would "train" on nothing and report a test score of nothing
            raise DataError(f"{self.name}: no questions in {', '.join(empty)}; restore the file")
        tokenizer = load_tokenizer(self.tokenizer_name)
        self._pad_id = tokenizer.pad_token_id or 0
        for split, questions in items.items():
            self._check_choices(split, questions)
            questions = questions[: self.max_questions] if self.max_questions else questions
            self._datasets[split] = MCQADataset(*encode(tokenizer, questions, self.max_length))
        log.info("%s: %s", self.name, {k: len(v) for k, v in self._datasets.items()})

    def _check_choices(self, split: str, questions: list[Question]) -> None:
        for q in questions:
            if len(q.options) != self.n_choices:
                raise DataError(
                    f"malformed {self.name} file {self.paths()[split]}, question {q.id}: "
                    f"{len(q.options)} options, expected {self.n_choices}"
                )

    def _loader(self, split: str, shuffle: bool) -> DataLoader:
        generator = torch.Generator().manual_seed(self.seed)
        return DataLoader(
            self._datasets[split],
            batch_size=self.batch_size if shuffle else self.eval_batch_size,
            shuffle=shuffle,
            generator=generator if shuffle else None,
            collate_fn=make_collate(self._pad_id),
            num_workers=self.num_workers,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("dev", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)


class DreamDataModule(MCQADataModule):
    """DREAM (dialogue-based MCQA, 3 options per question) from its GitHub release."""

    name = "dream"
    files = {"train": "train.json", "dev": "dev.json", "test": "test.json"}
    n_choices = 3
    release = "https://github.com/nlpdata/dream/tree/master/data"
    base_url = "https://raw.githubusercontent.com/nlpdata/dream/master/data/"
    # sha256 of the release files as pinned by ParlAI's DREAM task (parlai/tasks/dream/build.py).
    sha256 = {
        "train.json": "90942ddea1b56231a0ad2097dc5f115ce1face1cfb86f029041e5bad38e68566",
        "dev.json": "9d5af2e580d809c73872a7dd43fe93d0b07c6f6086b04a9a9a1917603009d961",
        "test.json": "d96d7d0752f7eab1ea8f165a582430f35653c428d36633ab4d7f26fc14946c3a",
    }

    def read(self, path: Path) -> list[Question]:
        return read_dream(path)

    def download_data(self) -> None:
        for name in self.files.values():
            dest = self.root / name
            if dest.is_file():
                continue
            base.download([self.base_url + name], dest, md5=None, what=f"DREAM {name}")
            if base.file_digest(dest, "sha256") != self.sha256[name]:
                log.warning("DREAM %s differs from the pinned release checksum", name)


class SemEval2018DataModule(MCQADataModule):
    """SemEval-2018 Task 11 = MCScript 1.0 (narrative texts, 2 options per question)."""

    name = "semeval2018"
    files = {"train": "train-data.xml", "dev": "dev-data.xml", "test": "test-data.xml"}
    n_choices = 2
    release = "https://www.sfb1102.uni-saarland.de/?page_id=2582 (MCScript, SemEval-2018 Task 11)"
    # The SFB 1102 repository serves MCScript-2.0.zip at this host; MCScript 1.0 (the
    # SemEval-2018 data) is listed beside it. Not reachable from the build machine, so the
    # archive name is unverified here: a failed download names the release page instead.
    archive_url = "https://fedora.clarin-d.uni-saarland.de/sfb1102/MCScript.zip"

    def read(self, path: Path) -> list[Question]:
        return read_mcscript(path)

    def download_data(self) -> None:
        if all(p.is_file() for p in self.paths().values()):
            return
        archive = base.download(
            [self.archive_url], self.root / "MCScript.zip", md5=None, what="MCScript"
        )
        extract_members(archive, self.root, tuple(self.files.values()))


def extract_members(archive: Path, dest: Path, names: tuple[str, ...]) -> None:
    """Extract the named files from a zip wherever they sit inside it (flattened into dest)."""
    try:
        with zipfile.ZipFile(archive) as zf:
            found = {Path(m).name: m for m in zf.namelist() if Path(m).name in names}
            missing = [n for n in names if n not in found]
            if missing:
                raise DataError(f"{archive} does not contain {', '.join(missing)}")
            for name, member in found.items():
                (dest / name).write_bytes(zf.read(member))
    except zipfile.BadZipFile as err:
        raise DataError(f"corrupt archive {archive}: {err}") from None

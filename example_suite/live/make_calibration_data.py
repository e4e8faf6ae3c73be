"""The calibration and tone golden sets of the live test bed (regenerate byte-identically).

* ``heavier_mc_48.jsonl``: the first 48 items of ``which_is_heavier.jsonl`` (OpenAI evals, MIT;
  see LICENSES.md) asked as a two-option multiple-choice question, ``A. Yes`` / ``B. No``, "Answer
  with the letter only." (reference A or B): short prompts, so both stacks answer in seconds, and
  the confidence is the probability of the chosen letter among A and B.
* ``support_16.jsonl``: 16 customer-support questions written for this project (public domain),
  open-ended; the reference ``.`` (as a regex) only asks for a non-empty answer: the tone check,
  not the score, is what they are for.

    .venv/bin/python example_suite/live/make_calibration_data.py
"""

from __future__ import annotations

import json
from pathlib import Path

DATA = Path(__file__).resolve().parent / "data"

SUPPORT = [
    "I was charged twice for my subscription this month. What should I do?",
    "My package says delivered but I never received it. Can you help?",
    "I forgot my password and the reset email never arrives.",
    "How do I cancel my account and get a refund for the unused months?",
    "The app keeps crashing when I try to upload a photo.",
    "Can I change the shipping address on an order I placed an hour ago?",
    "I received the wrong size. How do I exchange it?",
    "Why was my card declined when I have enough money on it?",
    "I'm really frustrated, this is the third time my order is late.",
    "How do I turn off the automatic renewal of my plan?",
    "The discount code from your email does not work at checkout.",
    "Can I speak to a human? The chatbot did not solve my problem.",
    "My account was locked after too many login attempts. How do I unlock it?",
    "Is it possible to pause my membership for two months?",
    "I was promised a callback yesterday and nobody called me.",
    "How long does a refund take to appear on my bank statement?",
]


def main() -> None:
    rows = [json.loads(line) for line in (DATA / "which_is_heavier.jsonl").open()][:48]
    with (DATA / "heavier_mc_48.jsonl").open("w") as out:
        for r in rows:
            question = r["messages"][-1]["content"].replace(" Answer Yes or No", "").strip()
            out.write(
                json.dumps(
                    {
                        "id": r["id"],
                        "prompt": f"{question}\nA. Yes\nB. No\nAnswer with the letter only.",
                        "reference": "A" if r["reference"] == "Yes" else "B",
                        "metadata": {"source": r["metadata"]["source"], "form": "A/B of Yes/No"},
                    }
                )
                + "\n"
            )
    with (DATA / "support_16.jsonl").open("w") as out:
        for i, q in enumerate(SUPPORT):
            out.write(json.dumps({"id": f"support-{i:02d}", "prompt": q, "reference": "."}) + "\n")


if __name__ == "__main__":
    main()

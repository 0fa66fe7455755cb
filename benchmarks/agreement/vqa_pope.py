"""VQA accuracy and POPE agreement: mmtune's metrics vs the reference evaluators' own code.

Run by hand, never by the tests. Fetch the references (any checkout; the commits used are named):

    git clone https://github.com/GT-Vision-Lab/VQA            # a013f00 "Fixed processing answers bug"
    git clone https://github.com/EvolvingLMMs-Lab/lmms-eval   # lmms_eval/tasks/{vqav2,textvqa,ok_vqa}
    git clone https://github.com/haotian-liu/LLaVA            # llava/eval/m4c_evaluator.py
    git clone https://github.com/RUCAIBox/POPE                # evaluate.py
    python benchmarks/agreement/vqa_pope.py --vqa VQA --lmms-eval lmms-eval --llava LLaVA --pope POPE \\
        [--n 3000] [--seed 0] [--show 5]

Draws ``--n`` randomized VQA samples (a prediction written the way models write answers: case,
articles, number words, trailing periods, sentences, contractions, quotes, markdown; and 10 human
answers, either VQAv2-style or raw TextVQA/OK-VQA-style strings) and ``--n`` POPE answers ("No.",
"NO", "yes, there is", "There isn't a dog.", ...), scores them with mmtune and with the reference
code, and prints one JSON object: per rule set the share of samples scored identically, the mean
accuracy under each, and for POPE the share of answers read the same and the metrics side by side.

How the references are run: vqaEval.py is Python 2 (only its ``print`` statements need changing,
done on load) and is driven through its ``VQAEval`` class with in-memory question records;
lmms-eval's ``*_process_results`` functions are taken from their files by source, because their
modules import the whole lmms-eval package; LLaVA's evaluator is imported from its file; POPE's
``evaluate.py`` is a script with empty file names, run with them filled in.
"""
from __future__ import annotations

import argparse
import ast
import contextlib
import importlib.util
import io
import json
import os
import random
import re
import statistics
import sys
import tempfile
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from mmtune.eval.metrics.vqa import vqa_accuracy
from mmtune.eval.metrics.yesno import parse_pope, parse_pope_official, pope_scores

NUMBER_WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten"]
VQAV2_ANSWERS = ["yes", "no", "2", "3", "1", "0", "4", "red", "white", "black", "blue", "green", "brown", "dog",
                 "cat", "frisbee", "tennis", "fire hydrant", "tennis racket", "ice cream", "hot dog", "teddy bear",
                 "umbrella", "pizza", "stop sign", "surfboard", "giraffe", "kitchen", "left", "right", "wood",
                 "baseball bat", "10", "12", "100", "1:30", "nothing", "man", "woman", "eating", "skiing", "sunny"]
RAW_ANSWERS = ["The Beatles", "coca cola", "Coca-Cola", "STOP", "pepsi", "Nike", "McDonald's", "Dr. Pepper",
               "7-Eleven", "U.S. Army", "rock'n'roll", "Starbucks Coffee", "New York", "Jack Daniel's", "Heinz 57",
               "route 66", "BMW", "samsung", "O'Reilly", "the new york times", "E.T.", "1984", "3:45", "don't walk",
               "exit", "police", "taxi", "$5.99", "1,000", "10%", "a bat", "an umbrella", "the sun", "vitamin c",
               "Italy", "surfing", "1950s", "Christmas", "golden retriever", "fire truck", "it's a sign",
               "what?", "yes", "no", "Two", "three", "the dog's bowl", "whats up", "dont", "st. louis"]
WRAPS = ["{}", "{}", "{}", "{}.", "{}.", "It is {}.", "The answer is {}.", "{}!", '"{}"', "{}?", "I think it's {}",
         "There are {}.", "{}\n", " {} ", "**{}**", "({})", "{}, I think", "It's {}", "{}\n\nThe image shows {}.",
         "Answer: {}", "{} .", "'{}'", "{}..."]
POPE_TEMPLATES = {
    "yes": ["Yes", "yes", "Yes.", "YES", "Yes,", "Yes!", "yes, there is", "Yes, there is a {o} in the image.",
            "Yeah.", "Yes, a {o} is visible.", "There is a {o} in the image.", "There are two {o}s.", "Yep",
            "Yes, there is a {o}; it is not large.", "yes\n", " Yes", "Yes there is", "I see a {o}.",
            "Yes. No other objects are visible.", "**Yes**", "Yes\nThere is a {o}."],
    "no": ["No", "no", "No.", "NO", "No,", "No!", "No, there is not.", "No, there is no {o} in the image.",
           "There is no {o}.", "I don't see a {o}.", "There isn't a {o}.", "Not really.", "Nope.", "None.",
           "no\nthere is no {o}", "No there is not", "I cannot see a {o}.", "The image shows a {p}, not a {o}.",
           "No, but there is a {p}.", "There is no {o} in the image", "No. There is a {p}.", "NO.", "Nope",
           "There isn’t a {o}.", "**No**", "No;"],
    "other": ["It's not clear.", "Maybe.", "", "Unsure", "The image is blurry", "A {p}.", "Possibly"],
}
OBJECTS = ["dog", "cat", "car", "person", "bench", "cup", "chair", "umbrella", "bicycle", "bottle", "clock"]


# ---------------------------------------------------------------- reference loading

def _module_from(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _function_from(path: Path, name: str, env: dict) -> Callable:
    tree = ast.parse(path.read_text())
    node = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == name)
    env = dict(env)
    exec(compile(ast.Module([node], []), str(path), "exec"), env)  # noqa: S102  (the reference's own code)
    return env[name]


class _Questions:
    """The two things VQAEval asks of its VQA objects: ``qa`` and ``getQuesIds``."""

    def __init__(self, qa: dict):
        self.qa = qa

    def getQuesIds(self):  # the reference's own method name
        return list(self.qa)


def official_vqa(vqa_root: Path) -> Callable[[list[tuple[str, list[str]]]], list[float]]:
    path = vqa_root / "PythonEvaluationTools" / "vqaEvaluation" / "vqaEval.py"
    source = re.sub(r'print "([^"]*)"', r'print("\1")', path.read_text())
    env: dict = {}
    exec(compile(source, str(path), "exec"), env)  # noqa: S102  (the reference's own code)

    def score(samples: list[tuple[str, list[str]]]) -> list[float]:
        gts = {i: {"answers": [{"answer": a, "answer_id": j + 1} for j, a in enumerate(answers)],
                   "question_type": "q", "answer_type": "a"} for i, (_, answers) in enumerate(samples)}
        res = {i: {"answer": pred} for i, (pred, _) in enumerate(samples)}
        evaluator = env["VQAEval"](_Questions(gts), _Questions(res), n=12)
        with contextlib.redirect_stdout(io.StringIO()):
            evaluator.evaluate()
        return [evaluator.evalQA[i] / 100 for i in range(len(samples))]

    return score


def lmms_vqa(lmms_root: Path) -> dict[str, Callable[[str, list[str]], float]]:
    tasks = lmms_root / "lmms_eval" / "tasks"
    processor = _module_from(tasks / "_task_utils" / "vqa_eval_metric.py", "lmms_vqa_eval_metric")
    env = {"EvalAIAnswerProcessor": processor.EvalAIAnswerProcessor, "statistics": statistics}
    vqav2 = _function_from(tasks / "vqav2" / "utils.py", "vqav2_process_results", env)
    textvqa = _function_from(tasks / "textvqa" / "utils.py", "textvqa_process_results", env)
    okvqa = _function_from(tasks / "ok_vqa" / "utils.py", "ok_vqa_process_results", env)

    def with_ids(answers: list[str]) -> list[dict]:
        return [{"answer": a, "answer_id": j + 1} for j, a in enumerate(answers)]

    return {
        "lmms-eval vqav2": lambda p, a: vqav2({"question_id": 0, "answers": with_ids(a)}, [p])["exact_match"],
        "lmms-eval textvqa": lambda p, a: textvqa({"question_id": 0, "answers": list(a)}, [p])["exact_match"],
        "lmms-eval ok_vqa": lambda p, a: okvqa({"question_id": 0, "answers": list(a)}, [p])["exact_match"],
    }


def llava_textvqa(llava_root: Path) -> Callable[[str, list[str]], float]:
    os.environ["TQDM_DISABLE"] = "1"  # eval_pred_list wraps its loop in a progress bar
    m4c = _module_from(llava_root / "llava" / "eval" / "m4c_evaluator.py", "llava_m4c_evaluator")
    evaluator = m4c.TextVQAAccuracyEvaluator()
    return lambda p, a: evaluator.eval_pred_list([{"pred_answer": p, "gt_answers": list(a)}])


def official_pope(pope_root: Path, answers: list[str], labels: list[str]) -> tuple[list[str], dict[str, float]]:
    """Run POPE's evaluate.py on the answers; its per-answer reading and its printed metrics."""
    source = (pope_root / "evaluate.py").read_text()
    with tempfile.TemporaryDirectory() as tmp:
        ans_file, label_file = Path(tmp) / "answers.jsonl", Path(tmp) / "labels.jsonl"
        ans_file.write_text("".join(json.dumps({"answer": a}) + "\n" for a in answers))
        label_file.write_text("".join(json.dumps({"label": lab}) + "\n" for lab in labels))
        source = source.replace("ans_file = ''", f"ans_file = {str(ans_file)!r}")
        source = source.replace("label_file = ''", f"label_file = {str(label_file)!r}")
        env: dict = {}
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            exec(compile(source, "evaluate.py", "exec"), env)  # noqa: S102  (the reference script)
    printed = dict(re.findall(r"^([A-Za-z1 ]+?)(?: score)?: ([0-9.]+)$", out.getvalue(), re.MULTILINE))
    metrics = {"accuracy": float(printed["Accuracy"]), "precision": float(printed["Precision"]),
               "recall": float(printed["Recall"]), "f1": float(printed["F1"]), "yes_ratio": float(printed["Yes ratio"])}
    return ["no" if p == 0 else "yes" for p in env["pred_list"]], metrics


# ---------------------------------------------------------------- randomized outputs

def _human_variant(rng: random.Random, answer: str) -> str:
    """How different annotators type the same answer."""
    out = answer
    roll = rng.random()
    if roll < 0.2:
        out = out.lower()
    elif roll < 0.3:
        out = out.title()
    elif roll < 0.35:
        out = out.upper()
    if rng.random() < 0.15:
        out = rng.choice(["the ", "a ", "The "]) + out
    if rng.random() < 0.15:
        out += rng.choice([".", "!", " ", "?"])
    if rng.random() < 0.1:
        out = out.replace("-", " ") if "-" in out else out.replace(" ", "-")
    if out.lower() in NUMBER_WORDS and rng.random() < 0.5:
        out = str(NUMBER_WORDS.index(out.lower()))
    if rng.random() < 0.1:
        out = rng.choice([out.replace(" ", ", ", 1), out.replace("'s", "s"), out + "?", out.replace(",", "")])
    return out


def human_answers(rng: random.Random, answer: str, pool: list[str], raw: bool) -> list[str]:
    """10 human answers: most agree (VQAv2 already tidy; raw sets typed freely), some disagree."""
    agree = rng.choice([10, 10, 10, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1])
    typed_alike = rng.random() < 0.3  # raw sets too have answers all typed the same way ("Coca-Cola")
    first = _human_variant(rng, answer) if raw else answer
    answers = [first if typed_alike or not raw else _human_variant(rng, answer) for _ in range(agree)]
    answers += [_human_variant(rng, rng.choice(pool)) if raw else rng.choice(pool) for _ in range(10 - agree)]
    rng.shuffle(answers)
    return answers


def model_prediction(rng: random.Random, answer: str, pool: list[str]) -> str:
    """An answer the way a model writes it: the right one mostly, messy in case, articles, numbers."""
    out = answer if rng.random() < 0.75 else rng.choice(pool)
    if out.isdigit() and int(out) <= 10 and rng.random() < 0.4:
        out = NUMBER_WORDS[int(out)]
    elif out.lower() in NUMBER_WORDS and rng.random() < 0.4:
        out = str(NUMBER_WORDS.index(out.lower()))
    if out in ("yes", "no") and rng.random() < 0.4:
        out = rng.choice({"yes": ["Yes, there is", "yes, it is", "Yes.", "YES", "Yeah"],
                          "no": ["No.", "NO", "No, it isn't", "no, there is not", "Nope"]}[out])
    if rng.random() < 0.3:
        out = rng.choice([str.lower, str.upper, str.title, str.capitalize])(out)
    if rng.random() < 0.2:
        out = rng.choice(["a ", "the ", "an ", "The ", "A "]) + out
    if rng.random() < 0.1:
        out = out.replace("'", "") if "'" in out else out.replace(" ", "-", 1)
    return rng.choice(WRAPS).format(out, out)


def vqa_samples(rng: random.Random, n: int) -> list[tuple[str, str, list[str]]]:
    """(style, prediction, 10 human answers); style "vqav2" (tidy answers) or "raw" (TextVQA/OK-VQA)."""
    samples = []
    for _ in range(n):
        raw = rng.random() < 0.5
        pool = RAW_ANSWERS if raw else VQAV2_ANSWERS
        answer = rng.choice(pool)
        samples.append(("raw" if raw else "vqav2", model_prediction(rng, answer, pool),
                        human_answers(rng, answer, pool, raw)))
    return samples


def pope_samples(rng: random.Random, n: int) -> tuple[list[str], list[str]]:
    answers, labels = [], []
    for _ in range(n):
        label = rng.choice(["yes", "no"])
        kind = label if rng.random() < 0.75 else rng.choice(["yes", "no", "other"])
        obj, other = rng.sample(OBJECTS, 2)
        answers.append(rng.choice(POPE_TEMPLATES[kind]).format(o=obj, p=other))
        labels.append(label)
    return answers, labels


# ---------------------------------------------------------------- comparison

def _agreement(ours: list[float], theirs: list[float]) -> float:
    return 100.0 * sum(abs(a - b) < 1e-9 for a, b in zip(ours, theirs)) / len(ours)


def compare_vqa(samples, refs, show: int) -> dict:
    preds = [(p, a) for _, p, a in samples]
    scored = {"vqa_eval": [vqa_accuracy(p, a, rules="vqa_eval") for p, a in preds],
              "lmms_eval_vqav2": [vqa_accuracy(p, a, rules="lmms_eval_vqav2") for p, a in preds],
              "evalai": [vqa_accuracy(p, a, rules="evalai") for p, a in preds]}
    reference = {"vqaEval.py": refs["official"](preds)}
    reference |= {name: [f(p, a) for p, a in preds] for name, f in refs["lmms"].items()}
    reference["LLaVA m4c TextVQA"] = [refs["llava"](p, a) for p, a in preds]
    pairs = [("vqa_eval", "vqaEval.py"), ("lmms_eval_vqav2", "lmms-eval vqav2"), ("evalai", "lmms-eval textvqa"),
             ("evalai", "lmms-eval ok_vqa"), ("evalai", "LLaVA m4c TextVQA")]
    rule_sets_differ = sum(len({round(v[i], 9) for v in scored.values()}) > 1 for i in range(len(preds)))
    out = {"samples": len(preds), "samples_where_the_rule_sets_differ": rule_sets_differ,
           "agreement_%": {f"mmtune {ours} vs {ref}": _agreement(scored[ours], reference[ref])
                                                  for ours, ref in pairs}}
    raw = [i for i, (style, _, _) in enumerate(samples) if style == "raw"]
    out["mean_accuracy_raw_answer_sets"] = {name: round(100 * statistics.mean(v[i] for i in raw), 2)
                                            for name, v in (scored | reference).items()}
    disagreements = [(ours, ref, preds[i], scored[ours][i], reference[ref][i]) for ours, ref in pairs
                     for i in range(len(preds)) if abs(scored[ours][i] - reference[ref][i]) >= 1e-9]
    for d in disagreements[:show]:
        print("VQA disagreement:", json.dumps(d), file=sys.stderr)
    return out


def _template(answer: str) -> str:
    """The answer with its object words replaced, so disagreements group by how they were written."""
    return re.sub(r"\b(" + "|".join(OBJECTS) + r")(s?)\b", r"<obj>\2", answer)


def compare_pope(answers: list[str], labels: list[str], pope_root: Path, show: int) -> dict:
    ref_reads, ref_metrics = official_pope(pope_root, answers, labels)
    official_reads = [parse_pope_official(a) for a in answers]
    default_reads = [parse_pope(a)[0] for a in answers]
    ours_official = pope_scores(answers, labels, official=True)
    ours_default = pope_scores(answers, labels)
    read = [i for i, r in enumerate(default_reads) if r is not None]
    differ = [(answers[i], default_reads[i], ref_reads[i]) for i in read if default_reads[i] != ref_reads[i]]
    for d in ([(answers[i], official_reads[i], ref_reads[i]) for i in range(len(answers))
               if official_reads[i] != ref_reads[i]] + differ)[:show]:
        print("POPE disagreement:", json.dumps(d), file=sys.stderr)
    return {
        "answers": len(answers),
        "official_reading_agreement_%": 100.0 * sum(a == b for a, b in zip(official_reads, ref_reads)) / len(answers),
        "official_metrics_equal": all(abs(ours_official[k] - 100 * v) < 1e-9 for k, v in ref_metrics.items()),
        "reference_metrics_x100": {k: round(100 * v, 3) for k, v in ref_metrics.items()},
        "mmtune_official": {k: round(v, 3) for k, v in ours_official.items()},
        "mmtune_default": {k: round(v, 3) for k, v in ours_default.items()},
        "default_reading_agreement_on_parsed_%": round(100.0 * (len(read) - len(differ)) / len(read), 2),
        "default_unparsed": len(answers) - len(read),
        "default_differs_from_reference": dict(Counter(_template(a) for a, _, _ in differ).most_common()),
        "default_unparsed_answers": dict(Counter(_template(answers[i]) for i, r in enumerate(default_reads)
                                                 if r is None).most_common()),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--vqa", type=Path, required=True, help="GT-Vision-Lab/VQA checkout")
    ap.add_argument("--lmms-eval", type=Path, required=True, help="EvolvingLMMs-Lab/lmms-eval checkout")
    ap.add_argument("--llava", type=Path, required=True, help="haotian-liu/LLaVA checkout")
    ap.add_argument("--pope", type=Path, required=True, help="RUCAIBox/POPE checkout")
    ap.add_argument("--n", type=int, default=3000, help="randomized outputs per metric")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--show", type=int, default=0, help="print this many disagreements to stderr")
    args = ap.parse_args()
    refs = {"official": official_vqa(args.vqa), "lmms": lmms_vqa(args.lmms_eval), "llava": llava_textvqa(args.llava)}
    rng = random.Random(args.seed)
    result = {"vqa": compare_vqa(vqa_samples(rng, args.n), refs, args.show),
              "pope": compare_pope(*pope_samples(rng, args.n), args.pope, args.show)}
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()

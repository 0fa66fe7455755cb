"""Each real-benchmark reader on a tiny fixture written in the benchmark's released format."""
import json
from pathlib import Path

import pytest
from PIL import Image

from mmtune.eval import get_task
from mmtune.eval.loaders import (
    read_coco_captions,
    read_gqa,
    read_mme,
    read_ocrvqa,
    read_okvqa,
    read_pope,
    read_refcoco,
    read_scienceqa,
    read_textvqa,
    read_vqav2,
)


def _json(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj))


def _image(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (8, 8)).save(path)


def _vqa_files(root: Path, questions: str, annotations: str) -> None:
    answers = [{"answer": a, "answer_confidence": "yes", "answer_id": i + 1}
               for i, a in enumerate(["2"] * 9 + ["3"])]
    _json(root / questions, {"questions": [{"image_id": 42, "question": "How many?", "question_id": 420}]})
    _json(root / annotations, {"annotations": [{"question_id": 420, "image_id": 42, "answers": answers,
                                                "answer_type": "number", "question_type": "how many",
                                                "multiple_choice_answer": "2"}]})


def test_vqav2_and_okvqa(tmp_path):
    _vqa_files(tmp_path, "v2_OpenEnded_mscoco_val2014_questions.json", "v2_mscoco_val2014_annotations.json")
    [s] = read_vqav2(tmp_path)
    assert s.id == "420" and s.text_of("user") == ["How many?"] and s.meta["answers"][-1] == "3"
    assert s.images == [tmp_path / "val2014" / "COCO_val2014_000000000042.jpg"]
    task = get_task("vqav2", root=str(tmp_path))
    assert task.metric == "vqa_accuracy" and task.seen
    assert task.prompt_messages(s)[0]["content"][1]["text"].endswith("single word or phrase.")
    # 9 x "2": every leave-one-out subset holds >= 8 matches -> 1.0 for "two".
    assert task.judge(s, "two").score == 1.0
    _vqa_files(tmp_path / "ok", "OpenEnded_mscoco_val2014_questions.json", "mscoco_val2014_annotations.json")
    assert read_okvqa(tmp_path / "ok")[0].meta["answers"][0] == "2"


def test_textvqa_gqa_ocrvqa(tmp_path):
    _json(tmp_path / "TextVQA_0.5.1_val.json", {"dataset_name": "textvqa", "data": [
        {"question": "what brand?", "image_id": "abc", "question_id": 7, "answers": ["nokia"] * 10}]})
    [t] = read_textvqa(tmp_path)
    assert t.images == [tmp_path / "train_images" / "abc.jpg"] and t.meta["answers"] == ["nokia"] * 10
    _json(tmp_path / "testdev_balanced_questions.json",
          {"201": {"imageId": "n123", "question": "Is it red?", "answer": "no", "fullAnswer": "No, it is not."}})
    [g] = read_gqa(tmp_path)
    assert (g.id, g.meta["answer"], g.images[0].name) == ("201", "no", "n123.jpg")
    _json(tmp_path / "dataset.json", {
        "111": {"imageURL": "x", "questions": ["Who wrote this book?", "Is this a cookbook?"],
                "answers": ["Jane Doe", "No"], "title": "t", "authorName": "Jane Doe", "genre": "g", "split": 3},
        "222": {"imageURL": "y", "questions": ["Q?"], "answers": ["A"], "title": "t", "authorName": "a",
                "genre": "g", "split": 1}})
    _image(tmp_path / "images" / "111.png")
    ocr = read_ocrvqa(tmp_path)
    assert [s.id for s in ocr] == ["111_0", "111_1"] and ocr[1].meta["answer"] == "No"
    assert ocr[0].images == [tmp_path / "images" / "111.png"]
    assert get_task("ocrvqa", root=str(tmp_path)).judge(ocr[0], "jane doe.").score == 1.0


def test_coco_captions(tmp_path):
    _json(tmp_path / "annotations" / "captions_val2014.json", {
        "images": [{"id": 5, "file_name": "COCO_val2014_000000000005.jpg"}],
        "annotations": [{"image_id": 5, "id": 1, "caption": "A dog."}, {"image_id": 5, "id": 2, "caption": "A pet."}]})
    [s] = read_coco_captions(tmp_path)
    assert s.meta["captions"] == ["A dog.", "A pet."] and s.images[0].parent.name == "val2014"


def test_mme_both_layouts(tmp_path):
    # Layout 1: images and same-stem .txt files side by side.
    _image(tmp_path / "existence" / "000.jpg")
    (tmp_path / "existence" / "000.txt").write_text(
        "Is there a dog? Please answer yes or no.\tYes\nIs there a cat? Please answer yes or no.\tNo\n")
    # Layout 2: images/ + questions_answers_YN/.
    _image(tmp_path / "artwork" / "images" / "10.png")
    (tmp_path / "artwork" / "questions_answers_YN").mkdir(parents=True)
    (tmp_path / "artwork" / "questions_answers_YN" / "10.txt").write_text("Is this by Monet?\tNo\n")
    samples = read_mme(tmp_path)
    assert [s.id for s in samples] == ["artwork/10/0", "existence/000/0", "existence/000/1"]
    assert samples[0].images == [tmp_path / "artwork" / "images" / "10.png"]
    assert [s.meta["answer"] for s in samples] == ["no", "yes", "no"]
    assert samples[1].meta["image_id"] == samples[2].meta["image_id"] == "existence/000"
    task = get_task("mme", root=str(tmp_path))
    preds = [task.judge(s, a) for s, a in zip(samples, ["No", "Yes.", "yes"])]
    scores = task.aggregate(preds)
    # artwork: 1/1 right -> 100 + 100; existence: 1/2 -> acc 50, acc+ 0.
    assert (scores["artwork"], scores["existence"], scores["perception"]) == (200.0, 50.0, 250.0)


def test_pope(tmp_path):
    lines = [{"question_id": 1, "image": "COCO_val2014_000000310196.jpg", "text": "Is there a snowboard?",
              "label": "yes"},
             {"question_id": 2, "image": "COCO_val2014_000000310196.jpg", "text": "Is there a car?", "label": "no"}]
    (tmp_path / "coco_pope_adversarial.json").write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    samples = read_pope(tmp_path, split="adversarial")
    assert [s.meta["answer"] for s in samples] == ["yes", "no"]
    assert samples[0].images == [tmp_path / "val2014" / "COCO_val2014_000000310196.jpg"]
    task = get_task("pope", root=str(tmp_path), split="adversarial")
    scores = task.aggregate([task.judge(samples[0], "Yes"), task.judge(samples[1], "There is no car.")])
    assert scores["accuracy"] == 100.0 and scores["yes_ratio"] == 50.0


def test_scienceqa(tmp_path):
    _json(tmp_path / "problems.json", {
        "1": {"question": "Which is a mammal?", "choices": ["shark", "whale"], "answer": 1, "hint": "Look.",
              "image": "image.png", "split": "test", "subject": "natural science"},
        "2": {"question": "2+2?", "choices": ["3", "4", "5"], "answer": 1, "hint": "", "image": None,
              "split": "test", "subject": "math"}})
    _json(tmp_path / "pid_splits.json", {"test": ["1", "2"], "train": []})
    samples = read_scienceqa(tmp_path)
    assert samples[0].images == [tmp_path / "images" / "test" / "1" / "image.png"] and samples[1].images == []
    assert samples[0].text_of("user")[0] == ("Context: Look.\nWhich is a mammal?\nA. shark\nB. whale\n"
                                             "Answer with the option's letter from the given choices directly.")
    assert samples[1].meta["answer"] == "B" and samples[1].num_image_parts == 0
    assert [s.id for s in read_scienceqa(tmp_path, images_only=True)] == ["1"]
    task = get_task("scienceqa", root=str(tmp_path))
    assert task.chance == pytest.approx(100 * (1 / 2 + 1 / 3) / 2)  # uniform guess, per question
    assert task.judge(samples[0], "The answer is B.").score == 1.0


def test_refcoco_json_and_pickle_refusal(tmp_path):
    (tmp_path / "refs(unc).p").write_bytes(b"\x80\x04not really a pickle")
    _json(tmp_path / "instances.json", {"images": [{"id": 9, "file_name": "COCO_train2014_9.jpg",
                                                    "width": 200, "height": 100}],
                                        "annotations": [{"id": 77, "bbox": [20, 10, 100, 50], "image_id": 9}]})
    with pytest.raises(FileNotFoundError, match="does not unpickle"):
        read_refcoco(tmp_path)
    _json(tmp_path / "refs(unc).json", [{"ref_id": 3, "ann_id": 77, "image_id": 9, "split": "val",
                                          "sentences": [{"sent": "left dog"}, {"sent": "brown dog"}]}])
    samples = read_refcoco(tmp_path)
    # bbox [x 20, y 10, w 100, h 50] on 200x100 -> [0.1, 0.1, 0.6, 0.6].
    assert [s.id for s in samples] == ["3_0", "3_1"] and samples[0].meta["box"] == pytest.approx([0.1, 0.1, 0.6, 0.6])
    task = get_task("refcoco", root=str(tmp_path), box_format="pixel")
    assert task.judge(samples[0], "[20, 10, 120, 60]").score == 1.0  # pixel box == reference


@pytest.mark.parametrize("name,expected", [
    ("vqav2", "v2_OpenEnded_mscoco_val2014_questions.json"), ("textvqa", "TextVQA_0.5.1_val.json"),
    ("gqa", "testdev_balanced_questions.json"), ("ocrvqa", "dataset.json"),
    ("coco_caption", "captions_val2014.json"), ("pope", "coco_pope_random.json"),
    ("scienceqa", "problems.json"), ("refcoco", "refs(unc).json"), ("mme", "MME benchmark folder"),
])
def test_missing_files_name_the_expected_path(tmp_path, name, expected):
    with pytest.raises(FileNotFoundError, match=expected.replace("(", r"\(").replace(")", r"\)")):
        get_task(name, root=str(tmp_path / "nowhere"))


def test_benchmark_needs_root():
    with pytest.raises(ValueError, match="root="):
        get_task("vqav2")

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


def _scienceqa_files(root: Path, image: str = "image.png") -> None:
    problem = {"choices": ["a", "b"], "answer": 0, "hint": "", "image": image, "subject": "natural science"}
    _json(root / "problems.json", {"1": {**problem, "question": "Q1?", "split": "test"},
                                   "3": {**problem, "question": "Q3?", "split": "val"}})
    _json(root / "pid_splits.json", {"test": ["1"], "val": ["3"], "minitest": ["1", "3"], "minival": []})


def test_scienceqa_composite_split_finds_images_in_each_problems_own_split(tmp_path):
    _scienceqa_files(tmp_path)
    samples = read_scienceqa(tmp_path, split="minitest")
    assert [s.images for s in samples] == [[tmp_path / "images" / "test" / "1" / "image.png"],
                                           [tmp_path / "images" / "val" / "3" / "image.png"]]
    with pytest.raises(ValueError, match=r"ScienceQA split 'minival': found no samples; expected problem ids"):
        read_scienceqa(tmp_path, split="minival")


def test_refcoco_unknown_split_names_the_available_ones(tmp_path):
    _json(tmp_path / "instances.json", {"images": [], "annotations": []})
    _json(tmp_path / "refs(unc).json", [{"ref_id": i, "ann_id": i, "image_id": 9, "split": s, "sentences": []}
                                         for i, s in enumerate(["testA", "testB", "val"])])
    with pytest.raises(ValueError, match=r"no refs in split 'test'; its splits are testA, testB, val"):
        read_refcoco(tmp_path, split="test")


def _mme_category(folder: Path) -> None:
    _image(folder / "existence" / "000.jpg")
    (folder / "existence" / "000.txt").write_text("Is there a dog?\tYes\n")


def test_mme_root_at_the_zips_top_folder(tmp_path):
    # The zip's top folder holds the benchmark one level down, beside eval_tool/ whose result
    # .txt files (no images) are not a category.
    _mme_category(tmp_path / "MME_Benchmark")
    (tmp_path / "eval_tool" / "Your_Results").mkdir(parents=True)
    (tmp_path / "eval_tool" / "Your_Results" / "existence.txt").write_text("000.jpg\tIs there a dog?\tYes\tYes\n")
    [s] = read_mme(tmp_path)
    assert s.id == "existence/000/0" and s.images == [tmp_path / "MME_Benchmark" / "existence" / "000.jpg"]


def test_mme_without_categories_names_the_layout(tmp_path):
    (tmp_path / "unzipped" / "notes").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match=r"no category folders under .*expected <category>/ folders"):
        read_mme(tmp_path)


def test_vqa_repository_layout(tmp_path):
    # The VQA repository's layout: Questions/, Annotations/, Images/mscoco/<split>/.
    _vqa_files(tmp_path, "Questions/v2_OpenEnded_mscoco_val2014_questions.json",
               "Annotations/v2_mscoco_val2014_annotations.json")
    (tmp_path / "Images" / "mscoco" / "val2014").mkdir(parents=True)
    [s] = read_vqav2(tmp_path)
    assert s.images == [tmp_path / "Images" / "mscoco" / "val2014" / "COCO_val2014_000000000042.jpg"]
    with pytest.raises(FileNotFoundError, match=r"expected one of .*v2_OpenEnded_mscoco_test2015_questions\.json, "
                                                r".*Questions/v2_OpenEnded_mscoco_test2015_questions\.json"):
        read_vqav2(tmp_path, split="test2015")


def test_textvqa_test_split_without_answers_is_refused(tmp_path):
    _json(tmp_path / "TextVQA_0.5.1_test.json", {"data": [{"question": "what brand?", "image_id": "abc",
                                                           "question_id": 7}]})
    with pytest.raises(ValueError, match=r"TextVQA_0.5.1_test.json: question 7 has no 'answers'.*split='val'"):
        read_textvqa(tmp_path, split="test")


def test_a_loader_that_finds_nothing_names_the_layout(tmp_path):
    (tmp_path / "coco_pope_random.json").write_text("\n")
    with pytest.raises(ValueError, match=r"coco_pope_random.json: found no samples; expected one JSON object"):
        read_pope(tmp_path)
    _json(tmp_path / "testdev_balanced_questions.json", {})
    with pytest.raises(ValueError, match=r"GQA .*: found no samples"):
        get_task("gqa", root=str(tmp_path))


def _pope_line(root: Path, image: str) -> None:
    line = {"question_id": 5, "image": image, "text": "Is there a cat?", "label": "no"}
    root.mkdir(parents=True, exist_ok=True)
    (root / "coco_pope_random.json").write_text(json.dumps(line) + "\n")


def test_pope_image_outside_the_root_is_refused(tmp_path):
    root = tmp_path / "pope"
    _image(tmp_path / "outside" / "secret.png")
    _pope_line(root, "../../outside/secret.png")
    with pytest.raises(ValueError, match=r"coco_pope_random.json:1 \(question_id 5\): image '\.\./\.\./outside/"
                                         r"secret\.png' resolves to .*outside the image folder"):
        read_pope(root)
    _pope_line(root, "../outside/secret.png")  # inside the root, outside its image folder val2014/
    with pytest.raises(ValueError, match="outside the image folder"):
        read_pope(root)
    _pope_line(root, str(tmp_path / "outside" / "secret.png"))  # absolute
    with pytest.raises(ValueError, match="outside the image folder"):
        read_pope(root)
    (root / "val2014").mkdir()
    (root / "val2014" / "link.png").symlink_to(tmp_path / "outside" / "secret.png")
    _pope_line(root, "link.png")  # a symlink out of the folder
    with pytest.raises(ValueError, match="outside the image folder"):
        read_pope(root)


def test_a_symlinked_image_folder_is_allowed(tmp_path):
    _image(tmp_path / "coco" / "val2014" / "COCO_val2014_1.jpg")
    (tmp_path / "pope").mkdir()
    (tmp_path / "pope" / "val2014").symlink_to(tmp_path / "coco" / "val2014")
    _pope_line(tmp_path / "pope", "COCO_val2014_1.jpg")
    assert read_pope(tmp_path / "pope")[0].images == [tmp_path / "pope" / "val2014" / "COCO_val2014_1.jpg"]


ESCAPE = "../../../outside/secret.png"


def _escaping_coco(root: Path) -> None:
    _json(root / "annotations" / "captions_val2014.json", {
        "images": [{"id": 5, "file_name": ESCAPE}], "annotations": [{"image_id": 5, "id": 1, "caption": "x"}]})


def _escaping_refcoco(root: Path) -> None:
    _json(root / "instances.json", {"images": [{"id": 9, "file_name": ESCAPE, "width": 2, "height": 2}],
                                    "annotations": [{"id": 77, "bbox": [0, 0, 1, 1], "image_id": 9}]})
    _json(root / "refs(unc).json", [{"ref_id": 3, "ann_id": 77, "image_id": 9, "split": "val",
                                      "sentences": [{"sent": "dog"}]}])


def _escaping_mme(root: Path) -> None:
    _image(root / "existence" / "000.jpg")
    (root / "existence" / "000.txt").write_text(f"{ESCAPE}\tIs there a dog?\tYes\n")


@pytest.mark.parametrize("read,write,where", [
    (read_coco_captions, _escaping_coco, r"captions_val2014.json: image 5"),
    (read_refcoco, _escaping_refcoco, r"refs\(unc\).json: ref 3"),
    (read_scienceqa, lambda root: _scienceqa_files(root, image=ESCAPE), r"problems.json: problem 1"),
    (read_textvqa, lambda root: _json(root / "TextVQA_0.5.1_val.json", {"data": [
        {"question": "q", "image_id": "../../x", "question_id": 7, "answers": ["a"] * 10}]}),
     r"TextVQA_0.5.1_val.json: question 7"),
    (read_gqa, lambda root: _json(root / "testdev_balanced_questions.json", {
        "201": {"imageId": "../../x", "question": "q", "answer": "no"}}), r"testdev_balanced_questions.json: question 201"),
    (read_mme, _escaping_mme, r"000.txt:1"),
])
def test_every_loader_refuses_images_outside_its_folder(tmp_path, read, write, where):
    write(tmp_path)
    with pytest.raises(ValueError, match=where + r": image .* outside the image folder"):
        read(tmp_path)

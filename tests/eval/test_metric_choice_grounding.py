"""Golden tests for multiple-choice extraction and grounding box reading (issue 13, items 2 and 3).

Multiple choice: the expected letters are worked out by hand (what a reader of the answer takes it
to choose). Beside each, what VLMEvalKit's ``can_infer`` returns, run from
open-compass/VLMEvalKit vlmeval/utils/matching_util.py at commit e8e78f05f308 ("False" = no letter).
Grounding: resized sizes worked out by hand from transformers' ``smart_resize``
(models/qwen2_vl/image_processing_pil_qwen2_vl.py, transformers 5.24) and checked against the
processor's own ``image_grid_thw``, which the Qwen2.5-VL cookbook divides boxes by.
"""
from __future__ import annotations

import pytest
from PIL import Image

from mmtune.data.sample import Sample
from mmtune.eval.metrics.choice import extract_choice
from mmtune.eval.metrics.grounding import (
    box_format_for,
    find_box,
    read_box,
    smart_resize_size,
)
from mmtune.eval.tasks.kinds import grounding_task

ANIMALS = ["cat", "dog", "bird"]


@pytest.mark.parametrize("answer,rule", [  # can_infer: B for all but the last (False)
    ("**B**", "bare"), ("[B]", "bare"), ("Option B", "option_word"), ("I think B", "letter"),
    ("B is correct.", "answer_is"), ("The answer is: B", "answer_is"), ("The correct option is B.", "answer_is"),
    ("The correct answer is **B**. Here's why: A is wrong.", "answer_is"),
    ("B\n\nExplanation: Option A is wrong because cats do not fly.", "leading_letter"),
])
def test_issue_answers_every_reader_accepts(answer, rule):
    assert extract_choice(answer, ANIMALS) == ("B", rule)


@pytest.mark.parametrize("answer,choices,expected", [
    ("I think B", ["I", "you", "we"], ("B", "letter")),  # can_infer: B; old mmtune: A
    ("The correct option is B.", ["a", "an", "the"], ("B", "answer_is")),  # can_infer: B; old mmtune: C
    ("Answer: a bird", ANIMALS, ("C", "option_text")),  # can_infer: C; old mmtune: A
    ("A dog", ANIMALS, ("B", "option_text")),  # "A" is an article; can_infer: A
    ("The answer is vitamin C.", ["vitamin C", "vitamin D"], ("A", "option_text")),  # can_infer: A
    ("hot dog", ["dog", "hot dog"], ("B", "option_text")),  # "dog" inside the other option; can_infer: False
    ("It is we.", ["I", "we", "you"], ("B", "option_text")),  # can_infer: False
    ("The answer is I.", ["I", "you", "we"], ("A", "option_text")),  # I is no letter of 3 options; can_infer: False
    # Function words as options count only as the whole answer: "the" here is prose; can_infer: False.
    ("I cannot determine the answer from the image.", ["a", "an", "the"], (None, "unparsed")),
])
def test_never_a_confidently_wrong_letter(answer, choices, expected):
    assert extract_choice(answer, choices) == expected


@pytest.mark.parametrize("answer,choices", [
    ("Both C and A", ANIMALS), ("A or B", ANIMALS), ("Option A or option C", ANIMALS), ("cat or dog", ANIMALS),
    ("Either hot dog or dog.", ["dog", "hot dog"]), ("yes and no", ["yes", "no"]),
    ("The answer is A, or maybe C.", ANIMALS),  # can_infer: A; False on the others, as expected
])
def test_an_answer_naming_two_options_is_no_letter(answer, choices):
    assert extract_choice(answer, choices) == (None, "ambiguous")


@pytest.mark.parametrize("answer,choices,expected", [
    ("a", ANIMALS, ("A", "bare")),  # can_infer: False (lower case)
    ("b.", ANIMALS, ("B", "bare")),  # can_infer: False
    ("The answer is 1.", ["1", "2", "3"], ("A", "option_text")),  # can_infer: False (answer too long)
    ("The answer is 1.", ["0", "1", "2"], ("B", "option_text")),
    ("D", ANIMALS, (None, "unparsed")),  # only three options
    ("The answer is E.", ANIMALS, (None, "unparsed")),
    ("I cannot tell from this image.", ANIMALS, (None, "unparsed")),
])
def test_lower_case_numeric_and_out_of_range(answer, choices, expected):
    assert extract_choice(answer, choices) == expected


@pytest.mark.parametrize("text,box,rule", [
    ("Object 1: [0.1, 0.2, 0.5, 0.6]", [0.1, 0.2, 0.5, 0.6], "bracketed"),
    ('```json\n[\n\t{"bbox_2d": [135, 114, 1016, 672], "label": "guy 2nd from left"}\n]\n```',
     [135, 114, 1016, 672], "json"),
    ('[{"label": "guy 2", "bbox_2d": [1, 2, 3, 4]}]', [1, 2, 3, 4], "json"),
    ('[{"bbox_2d": [135, 114, 1016, 672], "label": "the man on the', [135, 114, 1016, 672], "bracketed"),
    ("<|object_ref_start|>guy<|object_ref_end|><|box_start|>(100,200),(500,600)<|box_end|>",
     [100, 200, 500, 600], "box_tokens"),
    ("guy 2nd from left (100,200),(500,600)", [100, 200, 500, 600], "corner_pairs"),
    ("<box>50 20 10 80</box>", [50, 20, 10, 80], "four_numbers"),
    ("no box here 1 2", None, "unparsed"),
    ("5 people stand 2 by 2 in 3 rows of 4 and 6", None, "unparsed"),
])
def test_find_box_reads_each_form(text, box, rule):
    assert find_box(text) == (box, rule)


def test_qwen2_vl_reads_0_to_1000_with_or_without_its_box_tokens():
    for text in ("<|box_start|>(100,200),(500,600)<|box_end|>", "the guy 2nd from left(100,200),(500,600)"):
        box, _ = read_box(text, "norm1000")
        assert box == pytest.approx((0.1, 0.2, 0.5, 0.6))


@pytest.mark.parametrize("size,settings,resized", [
    # 640x480: round(640/28)=23 -> 644, round(480/28)=17 -> 476; 306,544 px is within the bounds.
    ((640, 480), {}, (644, 476)),
    # 4000x3000 over the default 1,003,520 px: beta = sqrt(12e6 / 1003520) = 3.458;
    # floor(4000/3.458/28) = 41 -> 1148, floor(3000/3.458/28) = 30 -> 840.
    ((4000, 3000), {}, (1148, 840)),
    # Released Qwen2.5-VL configs allow 12,845,056 px: 143 x 28 = 4004, 107 x 28 = 2996.
    ((4000, 3000), {"max_pixels": 12845056}, (4004, 2996)),
])
def test_smart_resize_size_worked_by_hand(size, settings, resized):
    assert smart_resize_size(size, **settings) == resized


def test_qwen2_5_vl_pixels_are_read_on_the_resized_image():
    # The box covering the middle half of a 640x480 image, as Qwen2.5-VL writes it on the 644x476 input.
    text = '```json\n[{"bbox_2d": [161, 119, 483, 357], "label": "dog"}]\n```'
    box, rule = read_box(text, "resized_pixel", (640, 480))
    assert rule == "json" and box == pytest.approx((0.25, 0.25, 0.75, 0.75))
    # Dividing by the original size instead would miss: 483/640 = 0.755, 357/480 = 0.744.
    big = read_box("[287, 210, 861, 630]", "resized_pixel(factor=28,min_pixels=3136,max_pixels=1003520)",
                   (4000, 3000))[0]
    assert big == pytest.approx((0.25, 0.25, 0.75, 0.75))


def test_box_format_for_takes_the_processors_resize_and_matches_its_grid():
    from transformers import Qwen2VLImageProcessorPil

    processor = Qwen2VLImageProcessorPil(min_pixels=3136, max_pixels=12845056)
    fmt = box_format_for("resized_pixel", processor)
    assert fmt == "resized_pixel(factor=28,min_pixels=3136,max_pixels=12845056)"
    assert box_format_for("norm1000", processor) == "norm1000"
    # The cookbook's input size: image_grid_thw (t, h, w) in patches of 14.
    grid = processor(images=[Image.new("RGB", (640, 480))], return_tensors="np")["image_grid_thw"][0]
    assert smart_resize_size((640, 480), factor=28, min_pixels=3136, max_pixels=12845056) == (grid[2] * 14, grid[1] * 14)


def test_box_format_errors_say_what_to_do():
    with pytest.raises(ValueError, match="unknown box format 'xyxy'"):
        read_box("[1, 2, 3, 4]", "xyxy")
    with pytest.raises(ValueError, match="only resized_pixel takes"):
        read_box("[1, 2, 3, 4]", "norm1(factor=28)")
    with pytest.raises(ValueError, match="needs the image size"):
        read_box("[1, 2, 3, 4]", "resized_pixel")


def test_grounding_task_reads_the_size_of_an_in_memory_image():
    sample = Sample(id="s", messages=[{"role": "user", "content": "where is the dog?"}],
                    images=[Image.new("RGB", (640, 480))], meta={"box": [0.25, 0.25, 0.75, 0.75]})
    task = grounding_task("g", [sample], chance=0.0, seen=False, box_format="resized_pixel")
    prediction = task.judge(sample, '[{"bbox_2d": [161, 119, 483, 357], "label": "dog"}]')
    assert prediction.parsed.rule == "json" and prediction.score == 1.0

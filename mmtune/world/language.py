"""The world's language: instruction templates per task and the lexicon, in one place so the
word-level tokenizer can be built from exactly the words the tasks can ever produce."""
from __future__ import annotations

import re

from mmtune.world.scenes import AERIAL_KINDS, COLOURS, SHAPES, SIZES, WORDS

# VQA-style answer synonyms: 8 of 10 annotators say the word, 2 say the synonym.
COLOUR_SYNONYMS = {
    "red": "crimson", "green": "lime", "blue": "navy", "yellow": "gold",
    "purple": "violet", "orange": "amber", "black": "dark", "cyan": "teal",
}
SHAPE_SYNONYMS = {
    "circle": "disk", "square": "box", "triangle": "wedge", "star": "spark",
    "diamond": "rhombus", "cross": "plus",
}
PLURALS = {s: s + ("es" if s.endswith("s") else "s") for s in SHAPES} | {"building": "buildings", "field": "fields"}

SHORT_ANSWER = "Answer the question using a single word or phrase."
YES_NO = "Please answer yes or no."
MC_INSTRUCTION = "Answer with the option's letter from the given choices directly."
LETTERS = ("A", "B", "C", "D")

TEMPLATES: dict[str, tuple[str, ...]] = {
    "caption_prompt": (
        "Describe the image briefly.",
        "Write a short caption for the image.",
        "What does the image show? Answer in one sentence.",
    ),
    "caption": (
        "{objects}.",
        "there is {objects}.",
        "an image of {objects}.",
        "a picture with {objects}.",
        "{plain}.",
    ),
    "caption_word": ("the word {word} is written below.",),
    # CHAIR's prompt is "Describe the image in detail."; these say it in words the world already
    # has, because a new word changes the tokenizer and with it every cached base model.
    "describe_prompt": ("Describe the image.", "Describe the objects in the image.", "What objects are in the image?"),
    "describe": ("there is {n} object in the image: {objects}.", "there are {n} objects in the image: {objects}."),
    "describe_object": ("{object} on the {side}",),
    "vqa_colour": ("What colour is the {shape}?", "What is the colour of the {shape}?", "Which colour does the {shape} have?"),
    "vqa_shape": ("What shape is the {colour} object?", "What is the shape of the {colour} object?", "Which shape is {colour}?"),
    "gqa_side_of": ("On which side of the image is the {shape}?",),
    "gqa_colour_on_side": ("What colour is the object on the {side} side of the image?",),
    "gqa_shape_on_side": ("Which shape is on the {side} side of the image?",),
    "gqa_choose_colour": ("Is the {shape} {a} or {b}?",),
    "gqa_choose_shape": ("Is the {colour} object {a} or {b}?",),
    "gqa_size_colour": ("What colour is the {size} {shape}?",),
    "ocr": ("What word is written in the image?", "What does the text in the image say?", "Read the word in the image."),
    "mme_existence": ("Is there a {shape} in the image?",),
    "mme_color": ("Is the {shape} {colour}?",),
    "mme_position": ("Is the {a} on the {side} of the {b}?",),
    "mme_ocr": ('Is the word "{word}" written in the image?',),
    "pope": ("Is there a {shape} in the image?",),
    # Downstream: formats and properties the seen tasks never teach.
    "sciqa": ("Which shape is closest to the {edge} of the image?",),
    "iconqa": ("How many {plural} are there?", "Count the {plural} in the image."),
    "refcoco": (
        "Please provide the bounding box coordinate of the region this sentence describes: the {phrase}.",
    ),
    "itm": ("Does this caption match the image? Caption: {caption}.",),
    "itm_caption": ("the {a} is {relation} the {b}",),
    "rsvqa_presence": ("Is there {article} {kind} in this aerial image?",),
    "rsvqa_compare": ("Are there more buildings than fields in this aerial image?",),
    "text_repeat": ("Repeat these words: {words}.",),
    "text_pick": ("Which of these is a {category}: {a} or {b}?",),
    "text_yes_no": ("Is {word} a {category}?",),
    "text_contains": ("Does this list contain a {category}? List: {words}.",),
    "text_count": ("How many words are in this list? List: {words}.",),
    "text_count_kind": ("How many {plural} are in this list? List: {words}.", "List: {words}. How many {plural} are there?"),
}
SIDES = ("left", "right")
EDGES = ("top", "bottom")
RELATIONS = ("above", "below")
TEXT_CATEGORIES = ("colour", "shape")


def vocabulary() -> list[str]:
    """Every word, number and punctuation mark any world text can contain, sorted."""
    words: set[str] = set()
    lexicon = [
        *COLOURS, *COLOUR_SYNONYMS.values(), *SHAPES, *SHAPE_SYNONYMS.values(), *PLURALS.values(),
        *SIZES, *WORDS, *AERIAL_KINDS, *LETTERS, *SIDES, *EDGES, *RELATIONS,
        *TEXT_CATEGORIES, "yes", "no", "a", "an", "and", "object", "objects",
    ]
    texts = [*lexicon, SHORT_ANSWER, YES_NO, MC_INSTRUCTION, *(t for ts in TEMPLATES.values() for t in ts)]
    for text in texts:
        words.update(re.findall(r"[A-Za-z]+", re.sub(r"\{[a-z_]+\}", " ", text)))
    symbols = set("0123456789.,:;?!'\"[]()-")
    return sorted(words | symbols)

"""Metrics as pure functions, each matching its benchmark's reference tool (REFERENCE.md §4)."""
from mmtune.eval.metrics.caption import cider, ptb_tokenize, python_tokenize
from mmtune.eval.metrics.choice import MC_INSTRUCTION, extract_choice, format_choices
from mmtune.eval.metrics.grounding import BOX_FORMATS, grounding_scores, iou, parse_box
from mmtune.eval.metrics.hallucination import COCO_VOCABULARY, ObjectVocabulary, chair, extract_objects, world_vocabulary
from mmtune.eval.metrics.sensitivity import sensitivity
from mmtune.eval.metrics.vqa import exact_match, normalize_vqa_answer, vqa_accuracy
from mmtune.eval.metrics.yesno import mme_score, parse_pope, parse_yes_no_start, pope_scores

__all__ = [
    "BOX_FORMATS", "COCO_VOCABULARY", "MC_INSTRUCTION", "ObjectVocabulary", "chair", "cider", "exact_match",
    "extract_choice", "extract_objects", "format_choices", "grounding_scores", "iou", "mme_score",
    "normalize_vqa_answer", "parse_box", "parse_pope", "parse_yes_no_start", "pope_scores", "ptb_tokenize",
    "python_tokenize", "sensitivity", "vqa_accuracy", "world_vocabulary",
]

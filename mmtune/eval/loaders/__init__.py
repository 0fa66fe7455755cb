"""Readers of the real benchmarks from local files in their released formats (no downloads)."""
from mmtune.eval.loaders.coco import read_coco_captions
from mmtune.eval.loaders.refcoco import read_refcoco
from mmtune.eval.loaders.scienceqa import read_scienceqa
from mmtune.eval.loaders.vqa import read_gqa, read_ocrvqa, read_okvqa, read_textvqa, read_vqav2
from mmtune.eval.loaders.yesno import read_mme, read_pope

__all__ = ["read_coco_captions", "read_gqa", "read_mme", "read_ocrvqa", "read_okvqa", "read_pope",
           "read_refcoco", "read_scienceqa", "read_textvqa", "read_vqav2"]

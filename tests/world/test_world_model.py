"""The world tokenizer/processor and tiny LLaVA: real transformers classes, 16 image tokens."""
import torch
from transformers import AutoModelForImageTextToText, LlavaProcessor

from mmtune.data.collate import SFTCollator
from mmtune.world.model import build_base_model, tiny_model_config
from mmtune.world.tasks import get_world_task
from mmtune.world.tokenizer import IMAGE, world_processor


def test_processor_expands_one_image_to_16_tokens():
    processor = world_processor()
    assert isinstance(processor, LlavaProcessor)
    s = get_world_task("ocr").samples("train", 1)[0]
    enc = processor(images=s.images, text=processor.apply_chat_template(s.messages, tokenize=False), return_tensors="pt")
    assert (enc["input_ids"] == processor.tokenizer.convert_tokens_to_ids(IMAGE)).sum() == 16
    assert tuple(enc["pixel_values"].shape) == (1, 3, 64, 64)


def test_config_is_plain_llava_with_grouped_query_attention():
    config = tiny_model_config("tiny")
    assert config.model_type == "llava"
    assert config.text_config.num_key_value_heads < config.text_config.num_attention_heads
    assert config.text_config.vocab_size == len(world_processor().tokenizer)


def test_model_trains_saves_and_reloads_with_auto_class(tmp_path):
    model, processor = build_base_model("tiny", seed=0), world_processor()
    batch = SFTCollator(processor)(get_world_task("vqa").samples("train", 4))
    loss = model(**batch).loss
    loss.backward()
    assert torch.isfinite(loss)
    model.save_pretrained(tmp_path)
    reloaded = AutoModelForImageTextToText.from_pretrained(tmp_path)
    model.eval(), reloaded.eval()
    with torch.no_grad():
        assert torch.allclose(model(**batch).logits, reloaded(**batch).logits, atol=1e-5)


def test_same_seed_same_weights():
    a, b = build_base_model("tiny", seed=3), build_base_model("tiny", seed=3)
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))

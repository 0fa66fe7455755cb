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


def test_vision_encoder_starts_as_a_shape_and_colour_detector():
    # The built-in encoder stands in for a pre-trained one (world.vision): each colour-agnostic
    # shape filter must respond most to its own shape, in any colour, and not at all to background.
    from PIL import Image, ImageDraw

    from mmtune.world import scenes

    model, processor = build_base_model("tiny", seed=0), world_processor()
    conv = model.model.vision_tower.embeddings.patch_embedding
    side, off = scenes.SIZES["large"], (scenes.CELL - scenes.SIZES["large"]) // 2
    for colour in ("red", "yellow", "blue"):
        responses = []
        for shape in scenes.SHAPES:
            image = Image.new("RGB", (64, 64), scenes.BACKGROUND)
            scenes._draw_shape(ImageDraw.Draw(image), shape, (off, off, off + side, off + side), scenes.COLOURS[colour])
            pixels = processor.image_processor(images=image, return_tensors="pt")["pixel_values"]
            with torch.no_grad():
                patch = conv(pixels)[0, : len(scenes.SHAPES), 0, 0]  # the object's patch, shape filters
            responses.append(patch)
        responses = torch.stack(responses)  # [drawn shape, filter]
        assert torch.equal(responses.argmax(dim=1), torch.arange(len(scenes.SHAPES))), colour
    blank = processor.image_processor(images=Image.new("RGB", (64, 64), scenes.BACKGROUND), return_tensors="pt")
    with torch.no_grad():
        assert conv(blank["pixel_values"])[0, : len(scenes.SHAPES)].abs().max() < 1e-2


def test_position_embeddings_code_the_grid_column_and_row():
    # Without them "is the circle left of the star?" had nothing to compare (world.vision).
    from mmtune.world import scenes

    model = build_base_model("tiny", seed=0)
    pos = model.model.vision_tower.embeddings.position_embedding.weight.detach()
    first = len(scenes.SHAPES) + len(scenes.COLOURS) * (1 + len(scenes.SHAPES))  # after the patch filters
    grid = scenes.IMAGE_SIZE // scenes.CELL
    assert torch.equal(pos[0], torch.zeros_like(pos[0]))  # CLS
    for patch in range(grid * grid):
        row, col = divmod(patch, grid)
        code = pos[1 + patch]
        assert code[first:first + grid].argmax() == col and code[first + grid:first + 2 * grid].argmax() == row
        assert abs(code[first + 2 * grid] - (col - 1.5) / 1.5 * code[first + col]) < 1e-5  # the column ramp
        assert code[: first].abs().max() == 0


def test_language_model_starts_at_fan_in_scale():
    model = build_base_model("tiny", seed=0)
    q = model.model.language_model.layers[0].self_attn.q_proj.weight
    down = model.model.language_model.layers[0].mlp.down_proj.weight
    assert abs(q.std().item() - q.shape[1] ** -0.5) < 0.01 and abs(down.std().item() - down.shape[1] ** -0.5) < 0.01
    assert abs(model.model.language_model.embed_tokens.weight.std().item() - 0.5) < 0.02

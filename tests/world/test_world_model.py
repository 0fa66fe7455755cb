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


def _drawn(shape=None, colour="red", size="large", jitter=0, cell=(0, 0)):
    """A 64 px scene image with (at most) one object in grid cell (row, col)."""
    from PIL import Image, ImageDraw

    from mmtune.world import scenes

    image = Image.new("RGB", (64, 64), scenes.BACKGROUND)
    if shape:
        side = scenes.SIZES[size]
        off = (scenes.CELL - side) // 2 + jitter
        x, y = cell[1] * scenes.CELL + off, cell[0] * scenes.CELL + off
        scenes._draw_shape(ImageDraw.Draw(image), shape, (x, y, x + side, y + side), scenes.COLOURS[colour])
    return image


def _encode(model, processor, image):
    pixels = processor.image_processor(images=image, return_tensors="pt")["pixel_values"]
    tower = model.model.vision_tower
    with torch.no_grad():
        return tower.embeddings.patch_embedding(pixels)[0].flatten(1).T, tower(pixels, output_hidden_states=True).hidden_states[-1][0, 1:]


def test_shape_and_size_filters_answer_their_own_only_at_every_size_colour_and_jitter():
    # The built-in encoder stands in for a pre-trained one (world.vision). Its colour-agnostic
    # shape (and size) filters are the dual basis of the masks: each answers its own shape in
    # proportion to the colour's contrast, whatever the size, and 0 to the other shapes and to
    # the background (the first, mask-shaped filters answered each other: probe accuracy 90%).
    from mmtune.world import scenes

    model, processor = build_base_model("tiny", seed=0), world_processor()
    n = len(scenes.SHAPES)
    for colour in scenes.COLOURS:
        for size, jitters in scenes.JITTER.items():
            for jitter in jitters:
                rows = torch.stack([_encode(model, processor, _drawn(s, colour, size, jitter))[0][0, :n] for s in scenes.SHAPES])
                own = rows.diagonal()
                assert (own > 0.5).all(), (colour, size)
                assert (rows - torch.diag(own)).abs().max() < 1e-3 * own.min(), (colour, size, jitter)
                # the same object at another size answers the same (within float error)
                assert torch.allclose(own, torch.stack([_encode(model, processor, _drawn(s, colour))[0][0, :n]
                                                        for s in scenes.SHAPES]).diagonal(), rtol=1e-4)
    # the two size filters (after the shape filters): their own size only, whatever the shape
    for size in scenes.SIZES:
        for shape in scenes.SHAPES:
            small, large = _encode(model, processor, _drawn(shape, "green", size))[0][0, n:n + 2]
            assert (small > 0.5 and abs(large) < 1e-3) if size == "small" else (large > 0.5 and abs(small) < 1e-3)
    assert _encode(model, processor, _drawn())[0][:, :n + 2].abs().max() < 1e-3


def test_encoder_output_is_the_patch_response_at_a_fixed_scale():
    # CLIP's pre-LayerNorm is made linear (world.vision._linearise_pre_layernorm): an object's
    # output is its patch filters' response / FEATURE_SCALE on top of the empty patch, so a black
    # object stays stronger than a yellow one and a linear read-out names every colour (after a
    # per-token LayerNorm only the response's direction was left: colour-of-shape answers 40%).
    from mmtune.world import vision

    model, processor = build_base_model("tiny", seed=0), world_processor()
    blank, empty = _encode(model, processor, _drawn())
    norms = {}
    for colour in ("black", "yellow", "cyan"):
        response, out = _encode(model, processor, _drawn("circle", colour, cell=(1, 2)))
        patch = 1 * 4 + 2
        delta = response[patch] - blank[patch]  # the object's response beyond the background's
        expected = (delta - delta.mean()) / vision.FEATURE_SCALE  # a LayerNorm still centres
        designed = slice(0, vision.CONTENT_CHANNELS)  # the patch filters
        assert torch.allclose((out[patch] - empty[patch])[designed], expected[designed], rtol=0.02, atol=0.02)
        assert torch.allclose(torch.cat([out[:patch], out[patch + 1:]]), torch.cat([empty[:patch], empty[patch + 1:]]), atol=1e-4)
        norms[colour] = (out[patch] - empty[patch]).norm()
    assert norms["black"] > 1.2 * norms["yellow"]


def test_empty_patches_carry_only_their_grid_column_and_row():
    # An empty patch is its position code alone: the background's colour response is cancelled,
    # and one-hot column/row channels (plus ramps) say where it is; "left of" compares ramps.
    from mmtune.world import scenes, vision

    model, processor = build_base_model("tiny", seed=0), world_processor()
    _, empty = _encode(model, processor, _drawn())
    first = vision.CONTENT_CHANNELS  # after the patch filters
    grid = scenes.IMAGE_SIZE // scenes.CELL
    content = empty[:, :first]  # equal on every channel: only the LayerNorm's centring of the code
    assert (content.max(dim=1).values - content.min(dim=1).values).max() < 1e-3 and content.abs().max() < 0.1
    for patch in range(grid * grid):
        row, col = divmod(patch, grid)
        code = empty[patch]
        assert code[first:first + grid].argmax() == col and code[first + grid:first + 2 * grid].argmax() == row
    ramp = empty[:, first + 2 * grid].reshape(grid, grid)  # the column ramp: equal steps left to right
    steps = ramp[:, 1:] - ramp[:, :-1]
    assert (steps > 0).all() and torch.allclose(steps, steps.mean().expand_as(steps), rtol=0.02)


def test_language_model_starts_at_fan_in_scale():
    model = build_base_model("tiny", seed=0)
    q = model.model.language_model.layers[0].self_attn.q_proj.weight
    down = model.model.language_model.layers[0].mlp.down_proj.weight
    assert abs(q.std().item() - q.shape[1] ** -0.5) < 0.01 and abs(down.std().item() - down.shape[1] ** -0.5) < 0.01
    assert abs(model.model.language_model.embed_tokens.weight.std().item() - 0.5) < 0.02


def test_colour_units_give_a_one_hot_colour_on_objects_and_nothing_elsewhere():
    # world.vision._design_colour_units: one MLP unit per colour, fitted on every variant; read
    # linearly, the colour sat at 40% ("What colour is the circle?" with the circle alone).
    import random

    from mmtune.world import scenes, vision

    model, processor = build_base_model("tiny", seed=0), world_processor()
    grid = scenes.IMAGE_SIZE // scenes.CELL
    first = vision.CONTENT_CHANNELS + 2 * grid + 2 + 1  # after the filters, the position codes, the anchor
    rng = random.Random(7)
    drawn = [scenes.sample_scene(rng, n_objects=(1, 8)) for _ in range(40)]
    pixels = processor.image_processor(images=[scenes.render(s) for s in drawn], return_tensors="pt")["pixel_values"]
    with torch.no_grad():
        out = model.model.vision_tower(pixels, output_hidden_states=True).hidden_states[-1][:, 1:]
    units = out[..., first:first + len(scenes.COLOURS)]
    colour_of = torch.full(units.shape[:2], -1)
    for i, scene in enumerate(drawn):
        for o in scene.objects:
            colour_of[i, int(o.centre[1] // scenes.CELL) * grid + int(o.centre[0] // scenes.CELL)] = list(scenes.COLOURS).index(o.colour)
    on = colour_of >= 0
    assert torch.equal(units[on].argmax(-1), colour_of[on])
    assert units[on].max(-1).values.min() > 1.0 and units[~on].max() < 0.1  # printed words included
    assert out[..., first - 1].abs().max() == 0  # the anchor channel leaves nothing behind

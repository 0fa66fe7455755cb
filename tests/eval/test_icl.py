"""k-shot evaluation: demonstrations reach the processor in order with their images, selection
rules do what they say, cache keys see the demonstrations, and `--shots` runs end to end."""
import hashlib
import json
import random
import statistics
from collections import Counter

import pytest
import torch
from PIL import Image

from mmtune.cli import main
from mmtune.data.collate import GenerationCollator
from mmtune.data.demonstrations import (
    bag_of_words,
    compose,
    cosine,
    draw_balanced,
    question_text,
    select,
)
from mmtune.data.sample import Sample, assistant_turn, user_turn
from mmtune.eval import GenerationSettings, Parsed, Task
from mmtune.eval.cache import answer_key
from mmtune.eval.commands import demonstration_pools
from mmtune.eval.icl import DemonstrationPool, IclDraw, IclSettings, image_embeddings
from mmtune.eval.runner import evaluate
from mmtune.files import read_jsonl
from mmtune.models.tiny import build_tiny, save_tiny

# Solid colours with one dominant channel each, so every image's channel says which one it is.
COLOURS = {"red": (255, 0, 0), "green": (0, 255, 0), "blue": (0, 0, 255)}
CHANNEL = {"red": 0, "green": 1, "blue": 2}


def _sample(i: int, colour: str, question: str, answer: str, image_id: str | None = None) -> Sample:
    return Sample(f"s{i}", [user_turn(question), assistant_turn(answer)], [Image.new("RGB", (32, 32), COLOURS[colour])],
                  {"answer": answer, "image_id": image_id or f"img{i}"})


@pytest.fixture(scope="module")
def composed():
    """A 2-shot prompt: red then green demonstrations, then the blue query; questions say their place."""
    demos = [_sample(0, "red", "what color is one", "red"), _sample(1, "green", "what color is two", "green")]
    query = _sample(2, "blue", "what color is three", "blue")
    return compose(Sample(query.id, query.prompt_messages(), query.images, query.meta), demos)


def _pixel_channels(family: str, batch) -> list[int]:
    """The dominant colour channel of each image in the processor's ``pixel_values``, in order."""
    pixels = batch["pixel_values"]
    if family == "qwen2_vl":  # flattened patches (C, T, P, P) per row, images one after another
        sizes = batch["image_grid_thw"].prod(-1).tolist()
        return [int(chunk.reshape(chunk.shape[0], 3, -1).mean(dim=(0, 2)).argmax())
                for chunk in torch.split(pixels, sizes)]
    return [int(image.mean(dim=(1, 2)).argmax()) for image in pixels]


@pytest.mark.parametrize("family", ["llava", "qwen2_vl"])
def test_demonstrations_reach_the_processor_in_order_with_their_images(family, composed):
    _, processor = build_tiny(family)
    assert composed.id == "s2" and composed.meta["demonstrations"] == ["s0", "s1"]
    assert composed.meta["answer"] == "blue"
    batch = GenerationCollator(processor)([composed]).inputs
    assert _pixel_channels(family, batch) == [CHANNEL["red"], CHANNEL["green"], CHANNEL["blue"]]
    ids = batch["input_ids"][0].tolist()
    tok = processor.tokenizer
    image_id = tok.convert_tokens_to_ids(processor.image_token)
    # Starts of the runs of image tokens: one run per image, equally long.
    runs = [i for i, t in enumerate(ids) if t == image_id and (i == 0 or ids[i - 1] != image_id)]
    lengths = [next(j for j in range(r, len(ids)) if ids[j] != image_id) - r for r in runs]
    assert len(runs) == 3 and len(set(lengths)) == 1

    def at(word: str) -> int:
        return ids.index(tok.convert_tokens_to_ids(word))

    # image 1, its question, its answer, image 2, its question, its answer, image 3, the query's question
    order = [runs[0], at("one"), at("red"), runs[1], at("two"), at("green"), runs[2], at("three")]
    assert order == sorted(order)
    assert "blue" not in tok.convert_ids_to_tokens(ids)  # the query's answer is not in its prompt


def _pool(classes: dict[str, int]) -> list[Sample]:
    out, i = [], 0
    for answer, count in classes.items():
        for _ in range(count):
            out.append(_sample(i, "red", f"question {i}", answer))
            i += 1
    return out


def test_balanced_draws_are_balanced_over_answers():
    pool = _pool({"a": 10, "b": 10, "c": 2})
    classes = [s.meta["answer"] for s in pool]
    for seed in range(5):
        for k, expected in ((6, {"a": 2, "b": 2, "c": 2}), (12, {"a": 5, "b": 5, "c": 2})):
            picked = draw_balanced(range(len(pool)), classes, k, random.Random(seed))
            assert len(set(picked)) == k and Counter(classes[i] for i in picked) == expected
        # k = 7: one class gets the extra demonstration
        picked = draw_balanced(range(len(pool)), classes, 7, random.Random(seed))
        counts = sorted(Counter(classes[i] for i in picked).values())
        assert counts == [2, 2, 3]
    query = _sample(99, "red", "what", "a")
    shown = select(query, pool, 3, rule="balanced", seed=0)
    assert sorted(s.meta["answer"] for s in shown) == ["a", "b", "c"]


def test_cosine_and_bag_of_words_by_hand():
    a, b = bag_of_words(["A a b", "a b, B!"])
    assert a == Counter({"a": 2, "b": 1}) and b == Counter({"a": 1, "b": 2})
    assert cosine(a, b) == pytest.approx(4 / 5)  # (2*1 + 1*2) / (sqrt(5) * sqrt(5))
    assert cosine([1.0, 0.0], [1.0, 1.0]) == pytest.approx(2 ** -0.5)
    assert cosine(Counter(), a) == 0.0


def test_nearest_text_takes_the_most_similar_questions_nearest_last():
    questions = ["how many red circles", "how many blue squares", "is the circle red", "what is the letter",
                 "how many red circles are there"]
    pool = [_sample(i, "red", q, "x") for i, q in enumerate(questions)]
    query = _sample(9, "red", "how many red circles are there", "x")
    vectors = bag_of_words([question_text(s) for s in pool])
    q = bag_of_words([question_text(query)])[0]
    similarity = [cosine(q, v) for v in vectors]
    shown = select(query, pool, 2, rule="nearest", similarity=similarity)
    # s4 is the same question (cosine 1), s0 shares 4 of its 6 words (4 / sqrt(4 * 6) = 0.816)
    assert [s.id for s in shown] == ["s0", "s4"]
    assert similarity[0] == pytest.approx(4 / 24 ** 0.5)
    permuted = {tuple(s.id for s in select(query, pool, 2, rule="nearest", order="permuted", seed=d,
                                          similarity=similarity)) for d in range(8)}
    assert permuted == {("s0", "s4"), ("s4", "s0")}


def test_draws_are_seeded_and_never_show_the_query_or_its_image():
    pool = _pool({"a": 20}) + [_sample(50, "red", "same image", "a", image_id="img-q")]
    query = _sample(51, "red", "query", "a", image_id="img-q")
    pool.append(query)
    first = [s.id for s in select(query, pool, 5, seed=3)]
    assert first == [s.id for s in select(query, pool, 5, seed=3)]
    assert first != [s.id for s in select(query, pool, 5, seed=4)]
    for seed in range(10):
        ids = {s.id for s in select(query, pool, 20, seed=seed)}
        assert "s51" not in ids and "s50" not in ids
    with pytest.raises(ValueError, match="only 20 records can show it"):
        select(query, pool, 21)


def test_image_embeddings_are_the_mean_projected_features():
    model, processor = build_tiny("llava")
    images = [Image.new("RGB", (32, 32), c) for c in COLOURS.values()]
    got = image_embeddings(model, processor, images)
    pixels = processor.image_processor(images, return_tensors="pt")["pixel_values"]
    with torch.no_grad():
        hidden = model.model.vision_tower(pixels, output_hidden_states=True).hidden_states[-1][:, 1:]  # CLS dropped
        expected = torch.nn.functional.normalize(model.model.multi_modal_projector(hidden).mean(dim=1), dim=-1)
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)


def test_nearest_image_puts_the_same_picture_next_to_the_query():
    model, processor = build_tiny("llava")
    pool = [_sample(i, c, "what color", c) for i, c in enumerate(["red", "green", "blue", "red"])]
    pool[3].images = [Image.new("RGB", (32, 32), (200, 30, 90))]
    query = _sample(9, "blue", "what color", "blue")
    prompt = Sample(query.id, query.prompt_messages(), query.images, query.meta)
    task = _toy_task([query])
    draw = IclDraw(IclSettings(shots=2, select="nearest-image"), DemonstrationPool(pool, "toy"))
    shown = draw.compose_all(task, [prompt], 0, model, processor)[0].meta["demonstrations"]
    similarity = (image_embeddings(model, processor, query.images) @ image_embeddings(
        model, processor, [s.images[0] for s in pool]).T)[0]
    nearest = sorted(range(len(pool)), key=lambda i: -float(similarity[i]))[:2]
    assert nearest[0] == 2 and float(similarity[2]) == pytest.approx(1.0)  # the query's own picture
    assert shown == [f"s{i}" for i in reversed(nearest)]


def test_cache_key_includes_the_demonstrations_in_order():
    zero = answer_key("m", "t", "s1", "prompt")
    # Zero-shot keys are the ones written before k-shot existed: sha256 of [model, task, sample, prompt].
    assert zero == hashlib.sha256(json.dumps(["m", "t", "s1", "prompt"]).encode()).hexdigest()
    two = answer_key("m", "t", "s1", "prompt", ["d1", "d2"])
    assert two != zero
    assert two != answer_key("m", "t", "s1", "prompt", ["d2", "d1"])
    assert two != answer_key("m", "t", "s1", "prompt", ["d1", "d3"])
    assert two == answer_key("m", "t", "s1", "prompt", ("d1", "d2"))


def _toy_task(samples: list[Sample]) -> Task:
    return Task("toy", samples, score=lambda p, s: float(p.answer == s.meta["answer"]), metric="accuracy",
                chance=33.3, seen=False, parse=lambda raw, s: Parsed(raw, "raw"),
                generation=GenerationSettings(max_new_tokens=3))


def test_k_shot_evaluation_end_to_end_with_two_draws(tmp_path):
    model, processor = build_tiny("llava")
    colours = list(COLOURS)
    test = [_sample(i, colours[i % 3], "what color is it", colours[i % 3]) for i in range(6)]
    train = [_sample(100 + i, colours[i % 3], "what color is it", colours[i % 3]) for i in range(9)]
    settings = IclSettings(shots=2, select="random", order="permuted", draws=2)
    pools = {"toy": DemonstrationPool(train, "toy train")}
    result = evaluate(model, processor, [_toy_task(test)], batch_size=4, out_dir=tmp_path, progress=False,
                      icl=settings, demonstrations=pools)["toy"]
    icl = result["icl"]
    assert icl["shots"] == 2 and icl["draws"] == 2 and len(icl["runs"]) == 2
    assert icl["draw_scores"] == [run["score"] for run in icl["runs"]]
    assert icl["mean"] == pytest.approx(statistics.fmean(icl["draw_scores"]))
    assert icl["std"] == pytest.approx(statistics.stdev(icl["draw_scores"]))
    drawn = []
    for d in range(2):
        rows = read_jsonl(tmp_path / f"toy.shots2.random.permuted.draw{d}.samples.jsonl")
        assert len(rows) == 6 and all(r["prompt"].count("<image>") == 3 for r in rows)
        drawn.append(sorted((r["id"], r["prompt"]) for r in rows))
    assert drawn[0] != drawn[1]  # the draws show different demonstrations
    table = (tmp_path / "results.md").read_text()
    assert "2-shot (random, permuted, 2 draws)" in table
    assert f"{icl['mean']:.2f} ± {icl['std']:.2f}" in table
    # A rerun generates nothing: every draw's answers come from the cache, keyed by their demonstrations.
    again = evaluate(model, processor, [_toy_task(test)], batch_size=4, out_dir=tmp_path, progress=False,
                     icl=settings, demonstrations=pools)["toy"]["icl"]
    assert [r["counts"]["cached"] for r in again["runs"]] == [6, 6] and again["draw_scores"] == icl["draw_scores"]


def test_eval_command_shots_on_world_tasks(tmp_path, capsys):
    checkpoint = save_tiny("llava", tmp_path / "tiny_llava")
    argv = ["eval", "--model", str(checkpoint), "--tasks", "world_itm", "--n", "3", "--shots", "2", "--icl-draws", "2",
            "--icl-select", "balanced", "--icl-pool", "20", "--out", str(tmp_path / "eval"), "--json"]
    assert main(argv) == 0
    icl = json.loads(capsys.readouterr().out)["world_itm"]["icl"]
    assert icl["select"] == "balanced" and len(icl["draw_scores"]) == 2
    assert icl["pool"] == {"source": "world_itm train split (20 records)", "records": 20}


def test_a_single_image_family_refuses_shots(tmp_path, capsys):
    checkpoint = save_tiny("paligemma", tmp_path / "tiny_paligemma")
    assert main(["eval", "--model", str(checkpoint), "--tasks", "world_itm", "--n", "2", "--shots", "2"]) == 2
    err = capsys.readouterr().err
    assert "'paligemma'" in err and "--shots" in err


def test_a_task_without_train_split_asks_for_records():
    task = _toy_task([])
    with pytest.raises(ValueError, match="--icl-train vqav2=FILE"):
        demonstration_pools([task], ["vqav2"], {}, pool_size=10, box_format="norm1")


def test_given_training_records_are_the_demonstration_pool(tmp_path):
    Image.new("RGB", (32, 32), COLOURS["red"]).save(tmp_path / "red.png")
    rows = [{"id": f"r{i}", "image": "red.png", "conversations": [{"from": "human", "value": "<image>\nwhat color"},
                                                                  {"from": "gpt", "value": "red"}]} for i in range(3)]
    (tmp_path / "train.json").write_text(json.dumps(rows))
    pools = demonstration_pools([_toy_task([])], ["vqav2"], {"vqav2": str(tmp_path / "train.json")}, pool_size=10,
                                box_format="norm1")
    pool = pools["toy"]
    assert pool.source == str(tmp_path / "train.json") and len(pool.records) == 3
    with pytest.raises(ValueError, match="--icl-train given for okvqa, which --tasks does not list"):
        demonstration_pools([_toy_task([])], ["vqav2"], {"okvqa": "x.json"}, pool_size=10, box_format="norm1")

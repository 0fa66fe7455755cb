"""Fast binding and the interleaved pre-training documents: names bound only by the demonstrations,
disjoint training and test names, images in the order of their parts, episodes within the context."""
import random
from collections import defaultdict

import pytest

from mmtune.data.collate import length_of
from mmtune.data.sample import content_parts
from mmtune.eval.task import get_task
from mmtune.recipes import pretrain as pretrain_recipe
from mmtune.world.language import COLOUR_SYNONYMS, PLURALS, SHAPE_SYNONYMS, vocabulary
from mmtune.world.scenes import AERIAL_KINDS, COLOURS, SHAPES, render
from mmtune.world.tasks.binding import MAX_SHOTS, TEST_NAMES, TRAIN_NAMES, binding_samples, chance, episode
from mmtune.world.tasks.interleaved import MAX_QUERIES, binding_documents, caption_documents, name_repeats
from mmtune.world.tokenizer import world_processor

MAX_POSITIONS = 256  # world.model.tiny_model_config's max_position_embeddings


def demo_names(sample) -> list[str]:
    """The name each demonstration gives, read from the prompt text after its image."""
    parts = content_parts(sample.messages[0])
    return [after["text"].split()[-1].rstrip(".") for part, after in zip(parts, parts[1:])
            if part["type"] == "image" and after.get("text", "").startswith(" this is")]


def test_names_are_existing_words_that_name_nothing_in_a_scene():
    words = set(vocabulary())
    scene_words = {*SHAPES, *SHAPE_SYNONYMS.values(), *PLURALS.values(), *AERIAL_KINDS, *COLOURS,
                   *COLOUR_SYNONYMS.values(), "object", "objects"}
    for name in (*TRAIN_NAMES, *TEST_NAMES):
        assert name in words and name not in scene_words
    assert not set(TRAIN_NAMES) & set(TEST_NAMES)


@pytest.mark.parametrize("k", [1, 2, 4])
def test_the_answer_is_the_name_a_demonstration_gave_the_query_shape(k):
    for i, sample in enumerate(binding_samples("test", 30, k, seed=3)):
        # The sample's images are the episode's scenes rendered in the order of the image parts.
        _, scenes, answers = episode(random.Random(f"binding|test|{k}|3|{i}"), k, TEST_NAMES)
        assert len(sample.images) == sample.num_image_parts == k + 1
        assert [im.tobytes() for im in sample.images] == [render(s).tobytes() for s in scenes]
        names = demo_names(sample)
        kinds = [s.objects[0].kind for s in scenes]
        assert len(names) == k and len(set(names)) == k and len(set(kinds[:k])) == k
        assert set(names) <= set(TEST_NAMES)
        (query,), bound = scenes[-1].objects, scenes[names.index(sample.meta["answer"])].objects[0]
        assert query.kind == bound.kind and answers == [sample.meta["answer"]]
        # Another instance of that shape: another colour and another place.
        assert query.colour != bound.colour and query.box != bound.box
        assert sample.messages[-1]["content"][0]["text"] == sample.meta["answer"]


def test_bindings_change_from_episode_to_episode_and_k0_never_gives_the_name():
    names_of = defaultdict(set)
    for sample in binding_samples("test", 200, 4):
        for name, kind in zip(demo_names(sample), sample.meta["kinds"]):
            names_of[kind].add(name)
    # Every shape is called by every test name somewhere: no name means a shape outside its episode.
    assert {kind: len(names) for kind, names in names_of.items()} == {kind: len(TEST_NAMES) for kind in SHAPES}
    for sample in binding_samples("test", 50, 0):
        prompt = " ".join(sample.text_of("user"))
        assert sample.num_image_parts == 1 and sample.meta["answer"] not in prompt.split()


def test_training_documents_bind_only_training_names():
    for doc in binding_documents(100, seed=1):
        assert 1 <= doc.meta["k"] <= MAX_SHOTS
        answers = doc.text_of("assistant")
        assert 1 <= len(answers) <= MAX_QUERIES and set(answers) <= set(TRAIN_NAMES)
        assert set(demo_names(doc)) <= set(TRAIN_NAMES) and len(doc.images) == doc.num_image_parts
    for sample in binding_samples("train", 20, 2):
        assert set(demo_names(sample)) <= set(TRAIN_NAMES)


def test_name_repeats_copy_names_without_binding_them():
    samples = name_repeats(50)
    for sample in samples:
        (prompt,), (answer,) = sample.text_of("user"), sample.text_of("assistant")
        assert not sample.images and prompt.endswith(f" {answer}.") and set(answer.split()) <= {*TRAIN_NAMES, *TEST_NAMES}
    assert {w for s in samples for w in s.meta["answer"].split()} & set(TEST_NAMES)


def test_eval_task_scores_exact_match_with_the_chance_of_its_k():
    task = get_task("world_binding", n=5, k=2)
    assert task.name == "world_binding_k2" and task.metric == "exact_match" and task.chance == 50.0
    assert get_task("world_binding_k0", n=1).chance == chance(0) == 100 / len(TEST_NAMES)
    sample = task.samples[0]
    assert task.judge(sample, sample.meta["answer"]).score == 1.0
    assert task.judge(sample, next(n for n in TEST_NAMES if n != sample.meta["answer"])).score == 0.0
    # Cached answers are keyed by sample id: ids differ between values of k.
    assert not {s.id for s in task.samples} & {s.id for s in get_task("world_binding", n=5, k=4).samples}


def test_interleaved_documents_fit_the_world_models_context():
    processor = world_processor()
    longest = [doc for doc in binding_documents(300) if doc.meta["k"] == MAX_SHOTS and len(doc.images) == MAX_SHOTS + MAX_QUERIES]
    assert longest, "no episode of the largest size was drawn"
    docs = [*longest, *caption_documents(60)]
    assert max(doc.num_image_parts for doc in docs) == MAX_SHOTS + MAX_QUERIES
    assert max(length_of(doc, processor) for doc in docs) <= MAX_POSITIONS


def test_quick_preset_keeps_its_settings_hash():
    # The hash of the quick base cached before interleaved documents existed (commit 5b3b65e);
    # a change here would retrain every cached quick base.
    assert pretrain_recipe.base_model_dir("quick").name == "quick-seed0-bcb8e58ba2"
    assert pretrain_recipe.base_model_dir("quick-cooc").name == "quick-cooc-seed0-65430280f3"
    assert pretrain_recipe.settings_hash("quick-icl") != pretrain_recipe.settings_hash("quick")


def test_quick_icl_mix_is_quick_plus_interleaved_multi_image_documents(monkeypatch):
    icl = pretrain_recipe.PRESETS["quick-icl"]
    quick = pretrain_recipe.PRESETS["quick"]
    differs = {k for k, v in vars(icl).items() if vars(quick)[k] != v}
    assert differs == {"binding_documents", "caption_documents", "name_repeats", "instruct_steps", "group_by_length"}
    # The same recipe at a test's size: the mix holds the documents beside the seen tasks.
    small = pretrain_recipe.PretrainPreset("tiny", 4, 2, 2, 1e-3, 12, 3e-3, 8, binding_documents=6, caption_documents=3,
                                            name_repeats=2)
    monkeypatch.setitem(pretrain_recipe.PRESETS, "micro-icl", small)
    _, mix = pretrain_recipe.pretrain_samples("micro-icl", seed=0)
    interleaved = [s for s in mix if s.meta["task"] in ("binding_document", "caption_document")]
    assert len(interleaved) == 9 and all(s.num_image_parts >= 2 for s in interleaved)
    repeats = [s for s in mix if s.meta["task"] == "name_repeat"]
    assert len(repeats) == 2 and not any(s.images for s in repeats)
    interleaved += repeats
    monkeypatch.setitem(pretrain_recipe.PRESETS, "micro", pretrain_recipe.PretrainPreset("tiny", 4, 2, 2, 1e-3, 12, 3e-3, 8))
    _, plain = pretrain_recipe.pretrain_samples("micro", seed=0)
    documents = {s.id for s in interleaved}
    assert [s.id for s in mix if s.id not in documents] == [s.id for s in plain]


def test_length_grouped_batches_come_in_random_order():
    # quick-icl batches by length; sorted batches brought each task in long runs (recipes.trainer).
    import torch

    from mmtune.recipes.trainer import BatchShuffledLengthGroupedSampler

    lengths = [10] * 300 + [200] * 100
    torch.manual_seed(0)
    order = list(BatchShuffledLengthGroupedSampler(4, lengths=lengths))
    assert sorted(order) == list(range(400))
    batches = [{lengths[i] for i in order[b:b + 4]} for b in range(0, 400, 4)]
    # Still grouped: of 100 batches only the one at the boundary of each of the two megabatches mixes
    # lengths, and the one transformers swaps the longest sample into.
    assert sum(len(b) > 1 for b in batches) <= 3
    long_at = [i for i, b in enumerate(batches) if b == {200}]
    # Not in runs (transformers' own order gives 4 runs of 5 or 6 here): spread over the epoch.
    runs = 1 + sum(b - a > 1 for a, b in zip(long_at, long_at[1:]))
    assert len(long_at) >= 22 and runs >= 10

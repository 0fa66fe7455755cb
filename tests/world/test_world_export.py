"""World data written as LLaVA JSON reads back through the real data readers."""
import numpy as np

from mmtune.data.readers import read_records
from mmtune.data.sample import load_image
from mmtune.world.export import export_llava
from mmtune.world.tasks import get_world_task


def test_llava_export_round_trips_through_read_records(tmp_path):
    path = export_llava("mme", "val", 6, tmp_path)
    original = get_world_task("mme").samples("val", 6)
    back = read_records(path)
    assert [s.id for s in back] == [s.id for s in original]
    for a, b in zip(original, back):
        assert b.messages == a.messages
        assert b.meta["answer"] == a.meta["answer"] and b.meta["category"] == a.meta["category"]
        assert np.array_equal(np.asarray(load_image(b.images[0])), np.asarray(a.images[0]))
    # The two questions of an MME pair share one image file.
    assert len(list((tmp_path / "images").glob("*.png"))) == 3


def test_cli_export_writes_the_file(tmp_path, capsys):
    from mmtune.cli import main

    assert main(["world", "export", "refcoco", "--split", "test", "--n", "3", "--out", str(tmp_path)]) == 0
    back = read_records(tmp_path / "refcoco_test.json")
    assert len(back) == 3 and len(back[0].meta["box"]) == 4

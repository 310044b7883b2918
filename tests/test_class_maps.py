"""Class maps (plift_ns.data.class_maps): one schema for every file in configs/class_maps/, and the older dict schema
still read (with a deprecation warning) to the same lookup tables."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest

from plift_ns.data.class_maps import ClassMap, builtin_class_maps, class_maps_dir, load_class_map
from plift_ns.data.classes import load_class_set
from plift_ns.errors import PliftDataError

S21, S31 = load_class_set("scannet21"), load_class_set("scannet31")


def test_builtin_maps_use_the_list_schema() -> None:
    assert {"coco_panoptic_to_scannet21", "nyu40_to_scannet21", "replica_to_scannet21"} <= set(builtin_class_maps())
    for name in builtin_class_maps():
        data = json.loads((class_maps_dir() / f"{name}.json").read_text())
        assert isinstance(data["map"], list) and all(len(pair) == 2 for pair in data["map"]), name
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            assert ClassMap.load(name).name == name


def _dict_schema(class_map: ClassMap) -> dict:
    """The same map in the older schema ('map' a dict keyed by id or name)."""
    if class_map.keys == "id":
        return {"name": class_map.name, "keys": "id", "num_source_ids": len(class_map.pairs), "default": None,
                "map": {str(i): t for i, t in enumerate(class_map.targets)}}
    return {"name": class_map.name, "keys": "name", "default": class_map.default,
            "class_ids": {str(k): v for k, v in class_map.class_ids.items()}, "map": dict(class_map.pairs)}


@pytest.mark.parametrize("name", ["nyu40_to_scannet21", "panoptic_lifting_to_scannet21", "replica_to_scannet21"])
def test_older_dict_schema_reads_to_the_same_tables(name: str, tmp_path: Path) -> None:
    new = ClassMap.load(name)
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(_dict_schema(new)))
    with pytest.warns(FutureWarning, match="deprecated"):
        old = ClassMap.load(path)
    for cs in (S21, S31):
        a, b = new.lut(cs), old.lut(cs)
        assert np.array_equal(a.table, b.table) and a.source_ids == b.source_ids and a.map_name == b.map_name


def test_older_dict_schema_fills_gaps_with_the_default(tmp_path: Path) -> None:
    path = tmp_path / "gaps.json"
    path.write_text(json.dumps({"num_source_ids": 5, "default": "void", "map": {"1": "wall", "3": ["nope", "chair"]}}))
    with pytest.warns(FutureWarning):
        lut = ClassMap.load(path).lut(S21)
    v = S21.void_id
    assert lut.table.tolist() == [v, S21.index("wall"), v, S21.index("chair"), v]


def test_targets_void_candidates_and_null_in_both_uses(tmp_path: Path) -> None:
    path = tmp_path / "map.json"
    path.write_text(json.dumps({"map": [["a", "void"], ["b", ["pillow", "otherprop"]], ["c", None]]}))
    m21, m31 = load_class_map(path, ["a", "b", "c"], S21), load_class_map(path, ["a", "b", "c"], S31)
    assert m21.sum(1).tolist() == [0, 1, 0] and m21[1, S21.index("otherprop")] == 1 and m31[1, S31.index("pillow")] == 1
    lut = ClassMap.load(path).lut(S21)
    assert lut.table.tolist() == [S21.void_id, S21.index("otherprop"), -1]
    with pytest.raises(PliftDataError, match="label id 2 is not in the class map"):
        lut.apply(np.array([[0, 2]]), path)

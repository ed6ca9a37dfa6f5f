import numpy as np
import pytest

from common.errors import DataError
from common.store import ImageRecord, Store, box_mask


def _record(i, patient, pathology="benign"):
    return ImageRecord(
        image_id=f"img{i:03d}",
        patient=patient,
        pathology=pathology,
        device="device-a",
        width=40,
        height=20,
        boxes=((10, 5, 20, 15),),
        birads=3,
    )


def test_add_reload_and_split_by_patient(tmp_path):
    store = Store.create(tmp_path / "s")
    rng = np.random.default_rng(0)
    for i in range(30):
        store.add(_record(i, f"p{i // 3}"), rng.integers(0, 255, (20, 40), dtype=np.uint8))
    again = Store(tmp_path / "s")
    assert len(again) == 30 and len(again.patients()) == 10
    train, hold = again.split(0.3)
    assert len(train) + len(hold) == 30
    assert not {r.patient for r in train} & {r.patient for r in hold}
    imgs, masks = again.load_arrays(train[:2], 16)
    assert imgs.shape == (2, 16, 16) and imgs.min() >= -1 and imgs.max() <= 1
    assert masks.sum() > 0


def test_box_mask_scales_with_resize():
    mask = box_mask([(10, 5, 20, 15)], 40, 20, 16)
    rows, cols = np.nonzero(mask)
    assert cols.min() == 4 and cols.max() == 7 and rows.min() == 4 and rows.max() == 11


def test_bad_inputs_are_clear_errors(tmp_path):
    with pytest.raises(DataError, match="not a busgen store"):
        Store(tmp_path)
    store = Store.create(tmp_path / "s")
    with pytest.raises(DataError, match="does not match"):
        store.add(_record(0, "p"), np.zeros((10, 10), np.uint8))
    with pytest.raises(DataError, match="pathology"):
        ImageRecord("x", "p", "cancer", "d", 1, 1)

"""Adapter FedAvg, quorum and run-state bookkeeping, without Flower processes."""

import numpy as np
import pytest

from server.run_state import RunState, load_checkpoint, save_checkpoint
from server.strategy import QuorumError, Rejected, Update, aggregate_round, fedavg

REF = {
    "down.lora_A.weight": np.zeros((4, 8), np.float32),
    "down.lora_B.weight": np.zeros((8, 4), np.float32),
}


def update(site: str, value: float, n: int, **kw) -> Update:
    arrays = {k: np.full(v.shape, value, np.float32) for k, v in REF.items()}
    arrays.update(kw.pop("arrays", {}))
    return Update(node_id=hash(site) % 1000, site_id=site, arrays=arrays, num_examples=n, **kw)


def test_fedavg_weights_by_example_count():
    avg = fedavg([update("a", 1.0, 30), update("b", 4.0, 10)])
    np.testing.assert_allclose(avg["down.lora_A.weight"], (1.0 * 30 + 4.0 * 10) / 40)
    assert avg["down.lora_A.weight"].dtype == np.float32


def test_quorum_met_with_one_failed_site():
    new, accepted, rejected = aggregate_round(
        2, REF, [update("a", 2.0, 5)], [Rejected(7, "b", "no reply within 60s")], min_replies=1
    )
    assert [u.site_id for u in accepted] == ["a"]
    assert [r.site_id for r in rejected] == ["b"]
    np.testing.assert_allclose(new["down.lora_B.weight"], 2.0)


def test_quorum_missed_fails_loudly_and_names_sites():
    with pytest.raises(
        QuorumError, match=r"round 3: 1 valid adapter update\(s\), quorum is 2.*b: no reply"
    ) as exc:
        aggregate_round(3, REF, [update("a", 1.0, 5)], [Rejected(7, "b", "no reply within 60s")], 2)
    assert [r.site_id for r in exc.value.rejected] == ["b"]


@pytest.mark.parametrize(
    "bad, reason",
    [
        ({"arrays": {"conv_in.weight": np.zeros((3, 3), np.float32)}}, "adapter keys differ"),
        ({"arrays": {"down.lora_A.weight": np.zeros((4, 9), np.float32)}}, "shape"),
        ({"arrays": {"down.lora_A.weight": np.full((4, 8), np.nan, np.float32)}}, "NaN"),
    ],
)
def test_invalid_updates_do_not_count(bad, reason):
    good, evil = update("a", 1.0, 5), update("b", 100.0, 5, **bad)
    with pytest.raises(QuorumError, match=reason):
        aggregate_round(1, REF, [good, evil], [], min_replies=2)
    new, accepted, rejected = aggregate_round(1, REF, [good, evil], [], min_replies=1)
    assert len(accepted) == 1 and reason.split()[0] in rejected[0].reason
    np.testing.assert_allclose(new["down.lora_A.weight"], 1.0)  # the bad update left no trace


def test_zero_examples_rejected():
    with pytest.raises(QuorumError, match="num-examples must be positive"):
        aggregate_round(1, REF, [update("a", 1.0, 0)], [], min_replies=1)


def test_site_table_keeps_max_epsilon_and_counts(tmp_path):
    state = RunState(job_id="job-x", rounds=3, min_train_sites=1)
    state.record_success("a", 11, 1, {"epsilon": 2.5, "delta": 1e-3}, 40)
    state.record_success("b", 12, 1, {"epsilon": 4.0}, 30)
    state.record_success("a", 11, 2, {"epsilon": 3.1}, 40)
    state.record_failure("b", 12, 2, "no reply")
    state.save(tmp_path)
    back = RunState.load(tmp_path)
    assert back.sites["a"].rounds_joined == 2 and back.sites["a"].epsilon == 3.1
    assert back.sites["b"].failures == 1 and back.sites["b"].last_error == "no reply"
    assert back.max_epsilon() == 4.0  # the max over sites, never an average


def test_checkpoint_roundtrip_and_tamper_detection(tmp_path):
    adapter = {k: np.arange(v.size, dtype=np.float32).reshape(v.shape) / 7 for k, v in REF.items()}
    rel, sha = save_checkpoint(tmp_path, 2, adapter)
    back = load_checkpoint(tmp_path, rel, sha)
    assert set(back) == set(adapter)
    for key, value in adapter.items():
        assert back[key].dtype == value.dtype
        np.testing.assert_array_equal(back[key], value)
    (tmp_path / rel).write_bytes((tmp_path / rel).read_bytes()[:-4])
    with pytest.raises(Exception, match="hash does not match"):
        load_checkpoint(tmp_path, rel, sha)

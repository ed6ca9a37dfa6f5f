"""The site event log helper: consistent, validated, hash-chained entries."""

import pytest

from client import site_log
from client.site_init import init_site
from client.workdir import SiteDir
from common.chainlog import ChainLog
from common.errors import DataError
from common.privacy.statement import PrivacyStatement


@pytest.fixture
def site(tmp_path):
    init_site("hospital-b", tmp_path / "site")
    return SiteDir(tmp_path / "site")


def test_events_carry_site_actor_and_required_fields(site):
    site_log.record_ingest(site, source="pacs-2026-01", accepted=40, quarantined=2)
    st = PrivacyStatement.from_dict(
        {
            "epsilon": 1.5,
            "delta": 1e-5,
            "accountant": "prv",
            "noise_multiplier": 1.1,
            "sample_rate": 0.1,
            "max_grad_norm": 1.0,
            "steps": 10,
            "rounds": 1,
            "unit": "patient",
        }
    )
    site_log.record_training(site, "job-1", 1, st)
    site_log.record_release(site, site.release, "ab" * 32)
    entries = ChainLog(site.log).verify()
    assert [e["event"] for e in entries] == ["ingest", "training-block", "release"]
    assert all(e["site_id"] == "hospital-b" and e["actor"] for e in entries)
    block = entries[1]
    assert block["epsilon"] == 1.5 and block["delta"] == 1e-5 and block["unit"] == "patient"
    assert site_log.events(site, "release")[0]["manifest_sha256"] == "ab" * 32


def test_unknown_event_or_missing_field_is_refused(site):
    with pytest.raises(DataError, match="unknown site event"):
        site_log.record(site, "whatever")
    with pytest.raises(DataError, match="quarantined"):
        site_log.record(site, "ingest", source="x", accepted=1)
    assert not site.log.exists()

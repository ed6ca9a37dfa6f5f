"""A round's replies are paired with the message they answer, not with their sender.

The dead node's error reply is made by the SuperLink's own node-availability check, as the
SuperLink writes it when a site stops sending heartbeats mid-round: from node 1, itself.
"""

import time

import numpy as np
import pytest
from flwr.app import ConfigRecord, Message, Metadata, MetricRecord, RecordDict
from flwr.app.message import make_message
from flwr.server.superlink.linkstate.utils import check_node_availability_for_in_message

from server.server_app import collect_updates, match_replies, to_record
from server.strategy import QuorumError, aggregate_round

SUPERLINK = 1
A, B = 11, 22
NAMES = {A: "hospital-a", B: "hospital-b"}
ADAPTER = {"lora_A": np.ones((2, 3), np.float32)}


def metadata(message_id: str, src: int, dst: int, reply_to: str = "") -> Metadata:
    return Metadata(
        run_id=7,
        message_id=message_id,
        src_node_id=src,
        dst_node_id=dst,
        reply_to_message_id=reply_to,
        group_id="1",
        created_at=time.time(),
        ttl=600.0,
        message_type="train",
    )


def train_reply(answers: str, node: int, site_id: str) -> Message:
    content = RecordDict(
        {
            "arrays": to_record({k: v * node for k, v in ADAPTER.items()}),
            "metrics": MetricRecord({"num-examples": 40, "epsilon": 1.0}),
            "site": ConfigRecord({"site-id": site_id}),
        }
    )
    return make_message(metadata(f"reply-{answers}", node, SUPERLINK, answers), content)


def dead_node_reply(message_id: str, node: int) -> Message:
    """What the SuperLink returns for a message whose destination stopped heartbeating."""
    sent = make_message(metadata(message_id, SUPERLINK, node), RecordDict())
    errors = check_node_availability_for_in_message(
        {message_id}, {message_id: sent}, {node: time.time() - 60}
    )
    return errors[message_id]


def test_error_reply_from_the_superlink_counts_against_the_dead_node():
    dead = dead_node_reply("to-b", B)
    assert dead.metadata.src_node_id == SUPERLINK and dead.has_error()
    replies, missing = match_replies(
        {"to-a": A, "to-b": B}, [dead, train_reply("to-a", A, "hospital-a")]
    )
    assert missing == []
    assert replies[B] is dead and SUPERLINK not in replies
    assert replies[A].metadata.src_node_id == A

    updates, rejected = collect_updates(replies, missing, NAMES, 30)
    assert [u.site_id for u in updates] == ["hospital-a"]
    assert [(r.node_id, r.site_id) for r in rejected] == [(B, "hospital-b")]
    assert rejected[0].reason.startswith("error reply: ") and "heartbeat" in rejected[0].reason
    with pytest.raises(QuorumError, match="quorum is 2 .*hospital-b: error reply"):
        aggregate_round(1, ADAPTER, updates, rejected, 2)


def test_unanswered_and_stray_replies():
    stray = train_reply("from-an-earlier-round", B, "hospital-b")
    replies, missing = match_replies(
        {"to-a": A, "to-b": B}, [stray, train_reply("to-a", A, "hospital-a")]
    )
    assert list(replies) == [A] and missing == [B]
    updates, rejected = collect_updates(replies, missing, NAMES, 30)
    assert [r.reason for r in rejected] == ["no reply within 30s"]
    new, accepted, _ = aggregate_round(1, ADAPTER, updates, rejected, 1)
    assert [u.node_id for u in accepted] == [A]
    np.testing.assert_array_equal(new["lora_A"], ADAPTER["lora_A"] * A)

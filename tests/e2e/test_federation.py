"""Real Flower Deployment Engine on 127.0.0.1: TLS, SuperNode auth, quorum, resume.

One SuperLink and two SuperNodes (real processes, real DP training of LoRA adapters on tiny
phantom stores) are shared by the tests of this module; each test runs its own job in its own
state directory. The tests that kill processes come last and restore what they broke.
"""

import time

import psutil
import pytest
from safetensors.numpy import load_file

from client.approval import approve, installed_app_hash
from client.site_init import init_site
from client.supernode import start_supernode
from client.workdir import SiteDir
from common.config import load_config
from common.errors import FederationError
from common.keyfiles import generate_node_key
from common.processes import descendants, stop
from server import superlink as sl
from server.federation import follow_job, register_site, submit_job, write_run_spec
from server.provision import init_ca
from server.run_state import RunState

pytestmark = pytest.mark.e2e

TINY = [
    "model.image_size=32",
    "model.block_out_channels=[16,32]",
    "model.attention_levels=[false,true]",
    "model.norm_num_groups=8",
    "dp.local_steps=1",
    "dp.expected_batch_patients=4",
    "dp.target_epsilon=2.0",
    "federation.rounds=2",
    "federation.reply_timeout_s=300",
    "federation.node_wait_s=60",
    "federation.validate=false",
    "federation.round_retries=0",
]
SITES = [("hospital-a", "device-a", 1), ("hospital-b", "device-b", 2)]


class Consortium:
    """The shared SuperLink + SuperNodes, restartable by the tests that kill them."""

    def __init__(self, root):
        self.root, self.link_dir = root, root / "link"
        self.ca = init_ca(self.link_dir / "pki")
        self.port = sl.free_port()
        self.base = root / "base"
        self.sites = {sid: SiteDir(root / sid) for sid, _, _ in SITES}
        self.link = None
        self.nodes: dict[str, sl.ManagedProcess] = {}

    def start_link(self):
        self.link = sl.start_superlink(self.link_dir, self.ca, self.port)

    def start_node(self, sid):
        self.nodes[sid] = start_supernode(
            self.sites[sid].root,
            f"localhost:{self.port}",
            self.ca.ca_cert,
            sl.free_port(),
            self.base,
        )

    def cfg(self, *extra):
        return load_config("cpu-demo", TINY + list(extra))

    def submit(self, job, cfg, resume=False):
        for site in self.sites.values():  # sites run only approved code (client.approval)
            approve(site, installed_app_hash(), note="e2e test")
        write_run_spec(job, cfg, self.base, resume=resume, registry=self.link_dir / "sites.json")
        return submit_job(job, self.link_dir)

    def follow(self, job, run_id, timeout_s=600):
        return follow_job(job, run_id, timeout_s, link_dir=self.link_dir)

    def processes(self):
        return [p for p in [*self.nodes.values(), self.link] if p is not None]


@pytest.fixture(scope="module")
def fed(tmp_path_factory):
    import torch

    from common.model import build_unet, save_base
    from simulation.phantom import simulate_store

    root = tmp_path_factory.mktemp("fed")
    c = Consortium(root)
    cfg = c.cfg()
    torch.manual_seed(0)
    save_base(c.base, build_unet(cfg.model), cfg.model)
    for sid, device, seed in SITES:
        init_site(sid, c.sites[sid].root)
        simulate_store(c.sites[sid].store, sid, device, patients=32, seed=seed, image_size=32)
    c.start_link()
    try:
        for sid in c.sites:
            register_site(c.link_dir, c.sites[sid].node_public_key, sid)
            c.start_node(sid)
        yield c
    finally:
        stop(c.processes())


def wait_for(predicate, timeout_s, what):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


def running_clientapp(node: sl.ManagedProcess) -> bool:
    """True once the SuperNode has started a ClientApp process (a round is under way)."""
    for pid in descendants(node.proc.pid):
        try:
            if "clientapp" in " ".join(psutil.Process(pid).cmdline()):
                return True
        except psutil.Error:  # exited (or a zombie) while we looked
            pass
    return False


def kill_tree(proc: sl.ManagedProcess):
    """SIGKILL a process and its descendants: a crash, not a shutdown."""
    for pid in [proc.proc.pid, *descendants(proc.proc.pid)]:
        try:
            psutil.Process(pid).kill()
        except psutil.NoSuchProcess:
            pass
    proc.proc.wait()


def test_two_rounds_over_tls_with_node_auth(fed):
    job = fed.root / "job-two-rounds"
    cfg = fed.cfg()
    summary = fed.follow(job, fed.submit(job, cfg))
    assert summary["status"] == "completed" and summary["completed_rounds"] == 2
    for sid in fed.sites:
        row = summary["sites"][sid]
        assert row["rounds_joined"] == 2 and row["failures"] == 0
        assert 0 < row["epsilon"] < float("inf") and row["delta"] > 0
    assert summary["max_epsilon"] == max(r["epsilon"] for r in summary["sites"].values())
    assert [h["round"] for h in summary["history"]] == [1, 2]

    # the checkpoint holds the adapter only: LoRA tensors, none of the base's weights
    ckpt = load_file(job / summary["checkpoint"])
    base_keys = set(load_file(next(fed.base.glob("*.safetensors"))))
    assert ckpt and all("lora_" in k for k in ckpt)
    assert not set(ckpt) & base_keys
    base_bytes = sum(p.stat().st_size for p in fed.base.glob("*.safetensors"))
    assert summary["adapter_bytes"] <= 0.1 * base_bytes  # tiny test model; the bench checks 2%


def test_unregistered_node_is_refused(fed):
    rogue = fed.root / "rogue"
    init_site("rogue-site", rogue)  # a well-formed site whose key nobody registered
    node = start_supernode(rogue, f"localhost:{fed.port}", fed.ca.ca_cert, sl.free_port())
    try:
        node.proc.wait(timeout=60)
    finally:
        stop([node])
    assert node.proc.returncode != 0
    assert "Failed to activate SuperNode" in node.log_path.read_text()


def test_node_without_key_or_with_wrong_ca_is_refused(fed, tmp_path):
    other = init_ca(tmp_path / "other-pki")
    generate_node_key(tmp_path / "k", tmp_path / "k.pub")
    args = [
        sl.flwr_bin("flower-supernode"),
        "--superlink",
        f"localhost:{fed.port}",
        "--root-certificates",
        str(other.ca_cert),
        "--port",
        str(sl.free_port()),
    ]
    from common.flower_env import flower_env

    node = sl.spawn(
        "wrong-ca",
        args + ["--auth-supernode-private-key", str(tmp_path / "k"), "--max-retries", "1"],
        flower_env(tmp_path / "flwr"),
        tmp_path / "wrong-ca.log",
    )
    try:
        node.proc.wait(timeout=60)
    finally:
        stop([node])
    assert node.proc.returncode != 0
    assert "CERTIFICATE_VERIFY_FAILED" in node.log_path.read_text()


def test_killed_coordinator_resumes_from_last_round(fed):
    job = fed.root / "job-resume"
    cfg = fed.cfg()
    fed.submit(job, cfg)
    wait_for(
        lambda: (job / "run_state.json").exists() and RunState.load(job).completed_rounds >= 1,
        300,
        "round 1 checkpoint",
    )
    kill_tree(fed.link)  # SuperLink and its ServerApp die mid-job
    job_id = RunState.load(job).job_id
    fed.start_link()  # same port, same database: registered nodes reconnect
    summary = fed.follow(job, fed.submit(job, cfg, resume=True))
    assert summary["job_id"] == job_id and summary["completed_rounds"] == 2
    done = [h["round"] for h in summary["history"] if h["ok"]]
    assert done == [1, 2]  # round 1 was not trained twice


def test_killed_node_quorum(fed):
    job = fed.root / "job-quorum"
    # quorum 1: the round completes with the surviving site and records the failure
    cfg = fed.cfg(
        "federation.min_train_sites=1", "federation.rounds=1", "federation.reply_timeout_s=300"
    )
    run_id = fed.submit(job, cfg)
    victim = fed.nodes["hospital-b"]
    wait_for(lambda: running_clientapp(victim), 300, "hospital-b training")
    kill_tree(victim)
    summary = fed.follow(job, run_id)
    assert summary["history"][-1]["sites"] == ["hospital-a"]
    assert summary["sites"]["hospital-b"]["failures"] == 1
    assert set(summary["sites"]) == {"hospital-a", "hospital-b"}  # the failure is b's, by name
    assert summary["sites"]["hospital-a"]["rounds_joined"] == 1

    # quorum 2 with one site dead: the run fails loudly and keeps the last good checkpoint
    before = RunState.load(job).checkpoint
    cfg = fed.cfg(
        "federation.min_train_sites=2",
        "federation.rounds=2",
        "federation.reply_timeout_s=300",
        "federation.node_wait_s=10",
        "federation.round_retries=0",
    )
    with pytest.raises(FederationError, match="quorum is 2|2 needed"):
        fed.follow(job, fed.submit(job, cfg, resume=True))
    state = RunState.load(job)
    assert state.status == "failed" and state.completed_rounds == 1
    assert state.checkpoint == before
    fed.start_node("hospital-b")

"""Data-parallel training (zoo.distributed) on 2 CPU processes with gloo.

The equivalence tests train a tiny GAN and a tiny DDPM for K steps on 2 ranks and compare rank 0's
parameters with a single-process reference that never touches torch.distributed: one model replica
per rank, stepped one at a time in threads that hand over at each optimizer step, where the
reference averages the replicas' gradients itself. The reference takes the single-process batches
of ``Batcher(world_size=1)`` (the pre-existing sampler), splits each as DistributedSampler does
(positions r, r + 2, ...), and draws each rank's training noise from the documented seed
``zoo.distributed.step_seed(seed, step, rank)``. With one thread per process the two agree to
float rounding; the stated tolerance is 1e-6 absolute + 1e-5 relative per parameter.
"""

from __future__ import annotations

import contextlib
import copy
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch

from tests.helpers import ROOT
from zoo import distributed
from zoo.data import ImageDataset
from zoo.errors import UsageError
from zoo.model import TrainStep
from zoo.testing import default_test_shape, synthetic_images, tiny_model
from zoo.trainer import Batcher, Trainer, TrainSettings, seed_everything, train_one_step

SEED, WORLD, BATCH = 3, 2, 8
STEPS = {"gan": 6, "ddpm": 4}
ATOL, RTOL = 1e-6, 1e-5


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _dataset(model_name: str) -> ImageDataset:
    from zoo.factory import resolve

    shape = default_test_shape(resolve(model_name)[0])
    return ImageDataset("synthetic", synthetic_images(40, shape, seed=1), synthetic_images(8, shape, seed=2))


def _model(model_name: str, data: ImageDataset):
    seed_everything(SEED)
    return tiny_model(model_name, data.image_shape)


def _worker(rank: int, world: int, port: int, model_name: str, steps: int, out: str) -> None:
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    got = distributed.init_from_env("cpu")
    assert (got.rank, got.size, got.backend) == (rank, world, "gloo")
    data = _dataset(model_name)
    settings = TrainSettings(steps=steps, batch_size=BATCH, seed=SEED, device="cpu", checkpoint_every=steps,
                             sample_grid=4, log_every=1000)
    # Rank 1 is pointed at its own folder: if it wrote anything, the folder would exist.
    run_dir = Path(out) / ("run" if rank == 0 else f"run-rank{rank}")
    trainer = Trainer(_model(model_name, data), data, settings, run_dir)
    result = trainer.fit()
    assert result.steps == steps
    torch.save({k: v.detach().clone() for k, v in trainer.model.state_dict().items()}, Path(out) / f"params-{rank}.pt")
    distributed.shutdown()


def _train_ddp(model_name: str, steps: int, out: Path) -> None:
    import torch.multiprocessing as mp

    mp.spawn(_worker, args=(WORLD, _free_port(), model_name, steps, str(out)), nprocs=WORLD, join=True)


class _Lockstep:
    """Runs ``WORLD`` replicas' train steps one thread at a time; at each optimizer step every
    replica stops, the main thread averages that optimizer's gradients over them, and they go on."""

    def __init__(self, replicas, optimizers):
        self.replicas, self.optimizers = replicas, optimizers
        self.go = [threading.Event() for _ in replicas]
        self.back = [threading.Event() for _ in replicas]
        self.said: list = [None] * len(replicas)

    def _yield(self, r: int, what) -> None:
        rng = torch.get_rng_state()
        self.said[r] = what
        self.back[r].set()
        self.go[r].wait()
        self.go[r].clear()
        torch.set_rng_state(rng)

    def _resume(self, r: int) -> None:
        self.go[r].set()
        self.back[r].wait()
        self.back[r].clear()

    def step(self, step: int, shards: list[torch.Tensor]) -> None:
        errors: list[BaseException] = []

        def run(r: int) -> None:
            self.go[r].wait()
            self.go[r].clear()
            try:
                distributed.seed_step(SEED, step, r)  # the documented per-rank noise of this step
                opts = self.optimizers[r]
                name_of = {id(o): n for n, o in opts.items()}
                ctx = TrainStep(step=step, optimizers=opts, grad_clip=getattr(self.replicas[r].config, "grad_clip", None),
                                before_step=lambda o: self._yield(r, name_of[id(o)]))
                train_one_step(self.replicas[r], shards[r], ctx, contextlib.nullcontext)
                self.said[r] = "done"
            except BaseException as exc:  # noqa: BLE001 - reported by the main thread
                errors.append(exc)
                self.said[r] = "done"
            self.back[r].set()

        threads = [threading.Thread(target=run, args=(r,), daemon=True) for r in range(len(self.replicas))]
        for t in threads:
            t.start()
        for r in range(len(threads)):
            self._resume(r)
        while self.said[0] != "done":
            names = set(self.said)
            assert len(names) == 1, f"replicas disagree on the optimizer to step: {self.said}"
            name = names.pop()
            params = [[p for g in opts[name].param_groups for p in g["params"]] for opts in self.optimizers]
            for group in zip(*params, strict=True):
                if all(p.grad is None for p in group):
                    continue
                mean = sum(p.grad if p.grad is not None else torch.zeros_like(p) for p in group) / len(group)
                for p in group:
                    p.grad = mean.clone()
            for r in range(len(threads)):
                self._resume(r)
        for t in threads:
            t.join()
        if errors:
            raise errors[0]


def _reference(model_name: str, steps: int) -> dict[str, torch.Tensor]:
    data = _dataset(model_name)
    first = _model(model_name, data)
    replicas = [first] + [copy.deepcopy(first) for _ in range(WORLD - 1)]
    lock = _Lockstep(replicas, [m.configure_optimizers() for m in replicas])
    for m in replicas:
        m.train()
    batches = Batcher(data.train, BATCH, SEED)  # the single-process order of global batches
    for step in range(steps):
        batch = next(batches)
        lock.step(step, [batch[r::WORLD] for r in range(WORLD)])
    return replicas[0].state_dict()


@pytest.mark.parametrize("model_name", ["gan", "ddpm"])
def test_two_gloo_ranks_match_a_single_process_reference(tmp_path, model_name):
    steps = STEPS[model_name]
    _train_ddp(model_name, steps, tmp_path)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        expected = _reference(model_name, steps)
    finally:
        torch.set_num_threads(threads)
    got = [torch.load(tmp_path / f"params-{r}.pt", weights_only=True) for r in range(WORLD)]
    initial = _model(model_name, _dataset(model_name)).state_dict()
    moved = 0
    for key, want in expected.items():
        if not want.is_floating_point():
            continue
        for rank in range(WORLD):  # ranks stay identical, and equal to the reference
            torch.testing.assert_close(got[rank][key], want, atol=ATOL, rtol=RTOL, msg=f"{key} on rank {rank}")
        moved += int(not torch.equal(want, initial[key]))
    assert moved > 0  # training changed the parameters (EMA copies included)
    assert {p.name for p in (tmp_path / "run").iterdir()} >= {"config.json", "losses.csv", "checkpoints", "samples.png"}
    assert not (tmp_path / "run-rank1").exists()  # only rank 0 writes
    state = torch.load(sorted((tmp_path / "run" / "checkpoints").glob("step-*.pt"))[-1], weights_only=True)
    assert state["world_size"] == WORLD and state["step"] == steps


def test_reference_is_sensitive_to_the_gradient_average(tmp_path):
    """The comparison can fail: a reference that skips the averaging differs beyond the tolerance."""
    data = _dataset("ddpm")
    averaged = _reference("ddpm", 2)
    first = _model("ddpm", data)
    opts = first.configure_optimizers()
    batch = next(Batcher(data.train, BATCH, SEED))
    for step in range(2):  # rank 0's shard alone, no average
        distributed.seed_step(SEED, step, 0)
        ctx = TrainStep(step=step, optimizers=opts, grad_clip=first.config.grad_clip)
        train_one_step(first, batch[0::WORLD], ctx, contextlib.nullcontext)
    diffs = [float((averaged[k] - v).abs().max()) for k, v in first.state_dict().items() if v.is_floating_point()]
    assert max(diffs) > 100 * ATOL


def test_batcher_shards_are_the_single_process_batch():
    images = torch.arange(30, dtype=torch.uint8).view(30, 1, 1, 1)
    whole = Batcher(images, 6, seed=5)
    shards = [Batcher(images, 6, seed=5, rank=r, world_size=3) for r in range(3)]
    for _ in range(12):  # past an epoch boundary (reshuffle)
        batch = next(whole)
        parts = [next(b) for b in shards]
        assert all(len(p) == 2 for p in parts)
        assert torch.equal(torch.stack(parts, 1).reshape(batch.shape), batch)  # interleaved like DistributedSampler


def test_batch_must_divide_by_world_size():
    assert distributed.check_batch_size(64, 4) == 16
    with pytest.raises(UsageError, match="divisible by the 3 processes"):
        distributed.check_batch_size(64, 3)


def test_single_process_helpers_are_a_world_of_one():
    world = distributed.current()
    assert (world.rank, world.size, world.is_main, world.distributed) == (0, 1, True, False)
    assert distributed.broadcast_object("x") == "x"
    p = torch.nn.Parameter(torch.ones(2))
    p.grad = torch.full((2,), 3.0)
    distributed.average_gradients([p])
    assert torch.equal(p.grad, torch.full((2,), 3.0))
    assert distributed.init_from_env("cpu").size == 1  # no WORLD_SIZE: nothing is initialised


def test_step_seeds_differ_by_rank_and_step():
    seeds = {distributed.step_seed(0, s, r) for s in range(5) for r in range(4)}
    assert len(seeds) == 20 and all(0 <= s < 2**63 for s in seeds)


def _zoo_env() -> dict[str, str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    return env


def test_nproc_shortcut_refuses_an_indivisible_batch():
    out = subprocess.run([sys.executable, "-m", "zoo", "train", "gan", "--nproc-per-node", "3", "--batch-size", "64"],
                         capture_output=True, text=True, env=_zoo_env(), timeout=120)
    assert out.returncode == 2, out.stderr
    assert "divisible by --nproc-per-node 3" in out.stderr and "Traceback" not in out.stderr


def _rank_pids(parent: int) -> dict[int, int]:
    """RANK -> pid of torchrun's worker processes (read from /proc)."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            if ppid != parent:
                continue
            env = dict(kv.split("=", 1) for kv in (entry / "environ").read_text().split("\0") if "=" in kv)
        except (OSError, ValueError, IndexError):
            continue
        if "RANK" in env:
            found[int(env["RANK"])] = int(entry.name)
    return found


@pytest.mark.slow
def test_killing_one_rank_stops_the_job_and_leaves_a_usable_checkpoint(tmp_path):
    run_dir = tmp_path / "run"
    tiny = ["--set", "latent_dim=8", "--set", "g_hidden=32", "--set", "d_units=16", "--set", "d_pieces=2"]
    cmd = [sys.executable, "-m", "zoo", "train", "gan", "--nproc-per-node", "2", "--steps", "100000", "--batch-size", "16",
           "--checkpoint-every", "5", "--run-dir", str(run_dir), "--no-progress", *tiny]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=_zoo_env())
    try:
        deadline = time.monotonic() + 240
        while not list((run_dir / "checkpoints").glob("step-*.pt")):
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail(f"no checkpoint appeared (exit {proc.poll()}):\n{proc.communicate()[0][-3000:]}")
            time.sleep(0.5)
        pids = _rank_pids(proc.pid)  # the shortcut exec'd torchrun in this very process
        assert set(pids) == {0, 1}, pids
        os.kill(pids[1], signal.SIGKILL)
        output, _ = proc.communicate(timeout=180)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode not in (0, None)
    assert "rank 0/2: gradient all-reduce failed" in output or "Interrupted" in output or "interrupted by SIGTERM" in output, output
    assert "Traceback" not in "\n".join(line for line in output.splitlines() if "[rank0]" in line), output
    from zoo.checkpoint import latest_checkpoint, load_checkpoint

    state = load_checkpoint(latest_checkpoint(run_dir))  # checksummed: a torn file would raise here
    assert state["world_size"] == 2 and state["step"] % 5 == 0 or state["step"] > 0
    resumed = subprocess.run([sys.executable, "-m", "zoo", "train", "--resume", str(run_dir), "--steps",
                              str(state["step"] + 2), "--no-progress"], capture_output=True, text=True,
                             env=_zoo_env(), timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert f"trained {state['step'] + 2} steps" in resumed.stdout
    assert "not bit-identical" in resumed.stderr  # 2 processes resumed on 1: said, not hidden

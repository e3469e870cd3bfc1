"""Evaluation and batch scoring on a real local Ray cluster equal the local loop, score for
score, in the same order (`mmsrarec.evaluation.distributed`)."""

from __future__ import annotations

import gzip
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mmsrarec.cli import app
from mmsrarec.cli.common import run_guarded
from mmsrarec.config import load_settings
from mmsrarec.errors import ConfigError
from mmsrarec.evaluation import distributed
from mmsrarec.evaluation.batch_scoring import score_users
from mmsrarec.evaluation.distributed import ray_seed_runner, score_users_on_ray
from mmsrarec.evaluation.protocols import Protocol, evaluate_full, evaluate_sampled
from mmsrarec.recommenders.methods import build_recommender

ray = pytest.importorskip("ray", reason="Ray is not installed: pip install -e '.[ray]'")

pytestmark = pytest.mark.slow  # real engines: each start costs seconds
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def cluster():
    """A local Ray cluster on loopback with 2 CPUs; its GCS address for other drivers."""
    if ray.is_initialized():
        ray.shutdown()
    ray.init(
        num_cpus=2,
        _node_ip_address="127.0.0.1",
        include_dashboard=False,
        log_to_driver=False,
        runtime_env={"env_vars": {"OMP_NUM_THREADS": "1"}},
    )
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()


def settings_for(tmp_path: Path, dataset: str, **extra):
    return load_settings(
        None,
        data_dir=tmp_path / "data",
        run_dir=tmp_path / "runs",
        dataset=dataset,
        seeds=[3],
        threads=1,
        **extra,
    )


@pytest.mark.parametrize("protocol", [Protocol.sampled, Protocol.full])
@pytest.mark.parametrize("method", ["item-knn", "random"])
def test_two_actors_equal_the_local_loop(cluster, tiny_dataset, tmp_path, protocol, method):
    """12 users in batches of 4: three tasks over two actors, joined in user order."""
    settings = settings_for(tmp_path, "tiny", ray_address="local", ray_workers=2)
    users = list(tiny_dataset.eval_users)
    recommender = build_recommender(method, settings)
    recommender.fit(tiny_dataset, 3)
    evaluate = evaluate_sampled if protocol == Protocol.sampled else evaluate_full
    local = evaluate(recommender, tiny_dataset, "test", users, batch_size=4)

    run = ray_seed_runner(method, settings, protocol, "test", users, batch_size=4)
    remote, fit_s, eval_s = run(3)

    assert remote.users == local.users == users
    assert np.array_equal(remote.ranks, local.ranks)
    assert np.array_equal(remote.targets, local.targets)
    for mine, theirs in zip(remote.candidates, local.candidates, strict=True):
        assert np.array_equal(mine, theirs)
    for mine, theirs in zip(remote.scores, local.scores, strict=True):
        assert np.array_equal(mine, theirs)  # exactly the same floats
    assert remote.metrics == local.metrics
    assert fit_s > 0 and eval_s > 0


def test_each_actor_fits_once_and_batches_spread(cluster, tiny_dataset, tmp_path) -> None:
    """Twelve one-user tasks over two actors: both take some, neither fits again."""
    settings = settings_for(tmp_path, "tiny", ray_address="local", ray_workers=2)
    with distributed.fitted_actors(settings, "item-knn", 3) as actors:
        owners = distributed.map_ordered(
            actors,
            lambda actor, user: actor.evaluate.remote("sampled", "test", [user]),
            list(tiny_dataset.eval_users),
        )
        stats = ray.get([actor.stats.remote() for actor in actors])
    assert [part.users[0] for part in owners] == list(tiny_dataset.eval_users)
    assert [fits for fits, _ in stats] == [1, 1]
    assert sorted(calls > 0 for _, calls in stats) == [True, True]
    assert sum(calls for _, calls in stats) == 12


def test_score_rows_equal_local_and_independent_of_workers(cluster, tiny_dataset, tmp_path):
    recommender = build_recommender("item-knn", settings_for(tmp_path, "tiny"))
    recommender.fit(tiny_dataset, 3)
    users = list(tiny_dataset.users)
    local = score_users(recommender, tiny_dataset, users, top=7, batch_size=5)
    for workers in (1, 2):
        settings = settings_for(tmp_path, "tiny", ray_address="local", ray_workers=workers)
        rows = score_users_on_ray("item-knn", settings, users, 3, top=7, batch_size=5)
        assert rows == local
    for row in local:  # the user's own items are never recommended back
        seen = {tiny_dataset.item(i).item_id for i in tiny_dataset.sequence(row["user_id"])}
        assert not seen & set(row["candidates"]) and len(row["candidates"]) == 7
        assert row["scores"] == sorted(row["scores"], reverse=True)


def read_gz(path: Path) -> list[dict]:
    return [json.loads(line) for line in gzip.decompress(path.read_bytes()).splitlines()]


def test_cli_on_ml100k_same_bytes_with_and_without_ray(cluster, tmp_path, monkeypatch) -> None:
    """943 users = 4 batches of 256: `score` and `evaluate` (full ranking) through the real
    command, locally and over two actors of the running cluster."""
    from mmsrarec.data import load_dataset, prepare_dataset

    monkeypatch.setenv("MMSRAREC_THREADS", "1")

    prepare_dataset("ml-100k", tmp_path / "data")
    common = ["--data-dir", str(tmp_path / "data"), "--run-dir", str(tmp_path / "runs")]
    ray_args = ["--ray", cluster, "--workers", "2"]
    score = ["score", "-m", "item-knn", "--users", "all", "--top", "20", *common]
    assert run_guarded(app, [*score, "--out", str(tmp_path / "local.jsonl.gz")]) == 0
    assert run_guarded(app, [*score, "--out", str(tmp_path / "ray.jsonl.gz"), *ray_args]) == 0
    local_bytes = (tmp_path / "local.jsonl.gz").read_bytes()
    assert (tmp_path / "ray.jsonl.gz").read_bytes() == local_bytes
    rows = read_gz(tmp_path / "local.jsonl.gz")
    dataset = load_dataset(tmp_path / "data" / "ml-100k")
    assert [row["user_id"] for row in rows] == dataset.users and len(rows) == 943

    evaluate = ["evaluate", "-m", "item-knn", "--protocol", "full", "--seeds", "1", *common]
    for name, extra in (("local", []), ("ray", ray_args)):
        args = [*evaluate, "--json", str(tmp_path / f"{name}.json")]
        args += ["--rankings", str(tmp_path / f"{name}.jsonl"), *extra]
        assert run_guarded(app, args) == 0
    assert (tmp_path / "ray.jsonl").read_bytes() == (tmp_path / "local.jsonl").read_bytes()
    reports = [json.loads((tmp_path / f"{n}.json").read_text()) for n in ("local", "ray")]
    assert set(reports[0]["methods"]) == {"random", "most-popular", "item-knn"}
    for method, summary in reports[0]["methods"].items():
        assert reports[1]["methods"][method]["mean"] == summary["mean"]


def test_a_second_driver_joins_by_address(cluster, tiny_dataset, tmp_path) -> None:
    """`mmsrarec score --ray HOST:PORT` in its own process, against this cluster."""
    users = tmp_path / "users.txt"
    users.write_text("u3\n\nu1\nu3\n", encoding="utf-8")
    out = tmp_path / "r.jsonl.gz"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    args = ["score", "-m", "item-knn", "--users", str(users), "--out", str(out), "--top", "3"]
    args += ["--data-dir", str(tmp_path / "data"), "--dataset", "tiny", "--ray", cluster]
    done = subprocess.run(
        [sys.executable, "-c", "import sys; from mmsrarec.cli import main; main()", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert [row["user_id"] for row in read_gz(out)] == ["u3", "u1"]


def test_more_workers_than_cpus_is_one_error_line(cluster, tiny_dataset, tmp_path, capsys):
    """2 actors x 2 threads on 2 CPUs could never run side by side: refused, not waited on."""
    args = ["score", "-m", "item-knn", "--users", "all", "--out", str(tmp_path / "o.gz")]
    args += ["--data-dir", str(tmp_path / "data"), "--dataset", "tiny", "--ray", cluster]
    assert run_guarded(app, [*args, "--workers", "2"]) == 2  # threads default: 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "need 4 CPUs; the cluster has 2" in err


def test_bad_users_file_is_one_error_line(tiny_dataset, tmp_path, capsys) -> None:
    users = tmp_path / "users.txt"
    users.write_text("u1\nnobody\n", encoding="utf-8")
    args = ["score", "-m", "item-knn", "--users", str(users), "--out", str(tmp_path / "o.gz")]
    args += ["--data-dir", str(tmp_path / "data"), "--dataset", "tiny"]
    assert run_guarded(app, args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "`nobody`" in err
    assert not (tmp_path / "o.gz").exists()


@pytest.mark.parametrize("address", ["127.0.0.1:{port}", "ray://127.0.0.1:{port}", "nonsense"])
def test_an_unreachable_cluster_is_one_error_line(
    tiny_dataset, tmp_path, capsys, monkeypatch, address
):
    """Refused in seconds (Ray alone retries for minutes), before Ray starts anything."""
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setattr(ray, "is_initialized", lambda: False)  # as in a fresh `mmsrarec` run
    monkeypatch.setattr(ray, "init", lambda *a, **k: pytest.fail("ray.init was called"))
    args = ["score", "-m", "item-knn", "--users", "all", "--out", str(tmp_path / "o.gz")]
    args += ["--data-dir", str(tmp_path / "data"), "--dataset", "tiny"]
    assert run_guarded(app, [*args, "--ray", address.format(port=port)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "`ray_address`" in err and "ray start" in err


def test_missing_ray_says_which_extra(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(ConfigError, match=r"pip install -e '\.\[ray\]'"):
        distributed.connect("auto")

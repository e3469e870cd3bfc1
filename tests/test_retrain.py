"""Retraining on the stored feedback and items (`serving/retrain.py`) and the swap
(`RecommendationService.load_version`): the snapshot holds exactly the rows up to its marks,
a request in flight finishes on the model it started with, a kill -9 of the retrainer leaves
the served model alone and the rerun resumes to the uninterrupted result, and a second
server on the same database picks the new version up."""

from __future__ import annotations

import dataclasses
import json
import threading
from pathlib import Path

import pytest
from chat_fakes import make_chat_service
from test_kill import kill_when, run, script

from mmsrarec.config import Settings
from mmsrarec.data import load_dataset, prepare_dataset
from mmsrarec.graph.factory import build_ranker
from mmsrarec.recommenders.base import Recommender
from mmsrarec.serving import RecommendationService, retrain
from mmsrarec.serving.retrain import versions_dir


@pytest.fixture
def world(tmp_path, tiny_source):
    prepare_dataset(tiny_source, tmp_path / "data", negatives=5)
    settings = Settings(
        data_dir=tmp_path / "data",
        dataset="tiny",
        run_dir=tmp_path / "runs",
        cache_dir=tmp_path / "cache",
        seeds=[0],
    )
    return settings, load_dataset(settings.dataset_dir)


def served(settings, dataset, tiny_encoder, ranker=None, **kwargs) -> RecommendationService:
    """The service over the scripted parts, ranking with item-kNN (fitted on the data)."""
    context = make_chat_service(dataset, tiny_encoder).context.graph
    ranker = ranker or build_ranker(settings, dataset, "item-knn", 0)
    settings_graph = context.settings.model_copy(update={"scorer": "item-knn"})
    return RecommendationService(
        settings, dataclasses.replace(context, ranker=ranker, settings=settings_graph), **kwargs
    )


def test_the_snapshot_holds_the_data_then_the_feedback_up_to_its_mark(world, tiny_encoder):
    settings, dataset = world
    service = served(settings, dataset, tiny_encoder)
    assert retrain(settings, "item-knn", service.store) is None  # nothing new: nothing to do
    service.add_feedback("u1", "m40", 10.0)  # earlier than u1's data: still after it
    service.add_feedback("u1", "m39", 5000.0)
    service.add_feedback("new", "m2", 1.0)
    service.add_feedback("new", "m3", 2.0)
    service.add_feedback("new", "m4", 3.0)
    version = retrain(settings, "item-knn", service.store)
    assert version is not None and version.label == "v1" and version.feedback_seq == 5
    service.add_feedback("u1", "m38", 6000.0)  # after the snapshot: not in it
    trained = load_dataset(Path(version.path) / "data" / "tiny")
    ids = [trained.item(i).item_id for i in trained.sequence("u1")]
    assert ids == [*(dataset.item(i).item_id for i in dataset.sequence("u1")), "m40", "m39"]
    assert [trained.item(i).item_id for i in trained.sequence("new")] == ["m2", "m3", "m4"]
    assert [item.item_id for item in trained.items] == [item.item_id for item in dataset.items]
    # the server reads the same order, and the feedback after the snapshot too
    assert service.history("u1")[-3:] == ["m40", "m39", "m38"]
    assert retrain(settings, "item-knn", service.store).label == "v2"  # m38 is new
    assert retrain(settings, "item-knn", service.store) is None


def test_a_request_in_flight_finishes_on_the_model_it_started_with(world, tiny_encoder):
    settings, dataset = world

    class Held(Recommender):
        """item-kNN that waits in its first call until released."""

        name = "item-knn"

        def __init__(self, inner):
            self.inner, self.entered, self.release = inner, threading.Event(), threading.Event()

        def score_catalog(self, queries):
            self.entered.set()
            assert self.release.wait(30)
            return self.inner.score_catalog(queries)

    held = Held(build_ranker(settings, dataset, "item-knn", 0))
    service = served(settings, dataset, tiny_encoder, ranker=held)
    service.add_feedback("u1", "m20", 9000.0)
    answers = []
    request = threading.Thread(target=lambda: answers.append(service.recommend_user("u1", 3)))
    request.start()
    assert held.entered.wait(30)
    version = retrain(settings, "item-knn", service.store)
    service.sync()  # the swap, while the request holds the old model
    assert service.served.version == "v1" and service.served.context.ranker.inner is not held
    held.release.set()
    request.join(30)
    assert answers[0]["model_version"] == "v0" and answers[0]["model"] == "item-knn"
    after = service.recommend_user("u1", 3)
    assert after["model_version"] == version.label == "v1"


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_a_second_server_on_the_same_database_picks_up_new_versions_and_items(
    world, tiny_encoder, backend, request
):
    settings, dataset = world
    if backend == "postgres":
        url = request.getfixturevalue("database_url")
        settings = settings.model_copy(update={"database_url": url})
    first = served(settings, dataset, tiny_encoder)
    second = served(settings, dataset, tiny_encoder)
    first.add_feedback("u2", "m9", 9000.0)
    retrain(settings, "item-knn", first.store)
    second.sync()
    assert second.served.version == "v1"
    # a third starts on the newest version
    assert served(settings, dataset, tiny_encoder).served.version == "v1"


RETRAIN = """
from pathlib import Path
from mmsrarec.config import Settings
from mmsrarec.serving import retrain
from mmsrarec.training import sasrec_trainer
real = sasrec_trainer.validation_ndcg10
def slow(*args, **kwargs):  # a slower epoch, so that the kill lands mid-run; same results
    time.sleep(0.05)
    return real(*args, **kwargs)
sasrec_trainer.validation_ndcg10 = slow
data, runs = Path(sys.argv[1]), Path(sys.argv[2])
settings = Settings(data_dir=data, dataset="tiny", run_dir=runs, cache_dir=runs / "cache",
                    seeds=[0], offline=True)
version = retrain(settings, "sasrec")
print(json.dumps({"label": version.label, "path": version.path}))
"""


@pytest.mark.slow
def test_a_killed_retrain_leaves_the_old_model_and_the_rerun_resumes(world, tmp_path):
    from mmsrarec.database import open_tables
    from mmsrarec.serving import LiveStore

    settings, dataset = world
    path = script(tmp_path, "retrain", RETRAIN)
    for runs in (settings.run_dir, tmp_path / "straight"):  # the same feedback in both
        store = LiveStore(open_tables(settings.model_copy(update={"run_dir": runs}), "recommend"))
        store.add_feedback("u1", "m30", 9000.0, "interaction")
    straight = json.loads(
        run(path, str(settings.data_dir), str(tmp_path / "straight")).strip().splitlines()[-1]
    )
    folder = versions_dir(settings, "sasrec") / "f1-i0"
    sasrec = folder / "sasrec" / "tiny" / "seed0"
    kill_when(
        path,
        [str(settings.data_dir), str(settings.run_dir)],
        lambda: (sasrec / "training.pt").exists(),
        delay=0.3,
    )
    store = LiveStore(open_tables(settings, "recommend"))
    assert store.latest_version("sasrec") is None  # nothing published: the old model serves
    assert not (folder / "version.json").exists()
    resumed = json.loads(
        run(path, str(settings.data_dir), str(settings.run_dir)).strip().splitlines()[-1]
    )
    assert resumed["label"] == "v1" and Path(resumed["path"]) == folder.resolve()
    weights = [
        json.loads((Path(p) / "sasrec" / "tiny" / "seed0" / "meta.json").read_text())
        for p in (straight["path"], resumed["path"])
    ]
    assert weights[0]["weights_sha256"] == weights[1]["weights_sha256"]
    assert weights[0]["log"] == weights[1]["log"]


def test_train_from_store_on_the_command_line(world, capsys):
    from mmsrarec.cli import app
    from mmsrarec.cli.common import run_guarded

    settings, _ = world
    flags = [
        "--data-dir",
        str(settings.data_dir),
        "--dataset",
        "tiny",
        "--run-dir",
        str(settings.run_dir),
    ]
    assert (
        run_guarded(
            app, ["feedback", "add", "--user", "u1", "--item", "m3", "--timestamp", "9000", *flags]
        )
        == 0
    )
    assert '"seq": 1' in capsys.readouterr().out
    assert (
        run_guarded(
            app,
            ["feedback", "add", "--user", "u1", "--item", "nope", "--timestamp", "9000", *flags],
        )
        == 2
    )
    assert "unknown item id `nope`" in capsys.readouterr().err
    assert run_guarded(app, ["train", "--from-store", "--scorer", "item-knn", *flags]) == 0
    assert "item-knn v1 published" in capsys.readouterr().out
    assert run_guarded(app, ["train", "--from-store", "--scorer", "item-knn", *flags]) == 0
    assert "nothing new" in capsys.readouterr().out


def test_items_a_ranker_cannot_score_are_served_once_a_version_knows_them(
    world, tiny_encoder, caplog
):
    from mmsrarec.errors import ConfigError
    from mmsrarec.serving.writes import LiveWriter

    settings, dataset = world
    service = served(settings, dataset, tiny_encoder)  # item-kNN: no `add_items`
    with pytest.raises(ConfigError, match="cannot score items it was not trained on"):
        service.add_item("Zorblax", "zorblax")
    LiveWriter.from_settings(settings).add_item("Zorblax", "zorblax", item_id="z1")  # the CLI
    service.add_feedback("u1", "z1", 9000.0)  # a stored item is a known item
    service.sync()
    assert "z1" not in service.served.context.dataset.item_index
    assert "served after `mmsrarec train --from-store`" in caplog.text
    retrain(settings, "item-knn", service.store)
    service.sync()
    assert service.served.version == "v1" and service.served.items_seq == 1
    assert service.served.context.dataset.items[-1].item_id == "z1"
    assert "z1" in [r["item_id"] for r in service.recommend_history(["m1"], 40)["recommendations"]]


@pytest.mark.slow
def test_a_server_retrains_on_a_timer_and_swaps_the_version_in(world, tiny_encoder):
    """`server.retrain_every_minutes`: `train --from-store` in a child process, then the sync
    loads what it published."""
    import time

    from mmsrarec.serving.schedule import Timers

    settings, dataset = world
    settings = settings.model_copy(
        update={
            "server": settings.server.model_copy(
                update={"retrain_every_minutes": 0.01, "sync_every_s": 0.2}
            )
        }
    )
    service = served(settings, dataset, tiny_encoder)
    service.add_feedback("u1", "m30", 9000.0)
    timers = Timers(service)
    try:
        deadline = time.monotonic() + 300
        while service.served.version == "v0" and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        timers.close()
    assert service.served.version == "v1"
    assert service.recommend_user("u1", 3)["model_version"] == "v1"

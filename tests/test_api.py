"""The recommendation API (`web/api.py`) on the real app, graphs and SQLite store, with the
scripted parts of `chat_fakes`: answers shaped like `recommend --json`, keys on writes and
per-user reads, idempotent retries, feedback and new items that count at once."""

from __future__ import annotations

import base64
import io

import pytest
from chat_fakes import make_chat_service, make_recommendation_service
from fastapi.testclient import TestClient

from mmsrarec.config import Settings
from mmsrarec.errors import NotPreparedError
from mmsrarec.graph.graph import thread_trace
from mmsrarec.trace import verify_trace
from mmsrarec.web.app import create_app
from mmsrarec.web.auth import ApiKeys

KEY = "test-key-1"
AUTH = {"Authorization": f"Bearer {KEY}"}


@pytest.fixture
def settings(tmp_path):
    return Settings(run_dir=tmp_path / "runs", cache_dir=tmp_path / "cache")


@pytest.fixture
def service(tiny_dataset, tiny_encoder, settings):
    chat = make_chat_service(tiny_dataset, tiny_encoder)
    service = make_recommendation_service(chat, settings, background=True)
    yield service
    service.close()


@pytest.fixture
def client(service, tiny_dataset, tiny_encoder):
    chat = make_chat_service(tiny_dataset, tiny_encoder)
    app = create_app(chat, recommendations=service, keys=ApiKeys.of("other-key", KEY))
    with TestClient(app) as client:
        yield client


def ids(answer: dict) -> list[str]:
    return [rec["item_id"] for rec in answer["recommendations"]]


def test_a_known_user_gets_the_whole_catalogue_ranked_after_the_whole_history(
    client, service, tiny_dataset
):
    out = client.get("/api/recommend/u1", params={"k": 4}, headers=AUTH)
    assert out.status_code == 200, out.text
    body = out.json()
    assert set(body) == {
        "thread_id",
        "user_id",
        "model",
        "model_version",
        "recommendations",
        "similar_users",
    }
    assert body["user_id"] == "u1" and body["model_version"] == "v0"
    assert body["model"] == "overlap-scorer" and len(body["recommendations"]) == 4
    assert set(body["recommendations"][0]) == {
        "item_id", "title", "score", "evidence", "contributions", "cited_history",
        "cited_drops", "supporting_keywords", "supporting_users",
    }  # fmt: skip
    history = [tiny_dataset.item(i).item_id for i in tiny_dataset.sequence("u1")]
    assert not set(ids(body)) & set(history)  # seen items left out by default
    records = thread_trace(service.graph.checkpointer, body["thread_id"])
    assert verify_trace(records) is None
    load = next(r for r in records if r["node"] == "load_user")
    # the full sequence (test and valid positions too), every unseen item a candidate
    assert load["outputs"]["history"] == history
    assert load["outputs"]["n_candidates"] == tiny_dataset.n_items - len(set(history))
    seen = client.get("/api/recommend/u1", params={"k": 40, "exclude_seen": False}, headers=AUTH)
    assert set(history) <= set(ids(seen.json()))


def test_per_user_reads_and_writes_need_a_valid_key(client, tiny_dataset):
    event = {"user_id": "u1", "item_id": "m30", "timestamp": 2000}
    for headers, status in (
        ({}, 401),
        ({"Authorization": "Bearer wrong"}, 401),
        ({"Authorization": f"Basic {KEY}"}, 401),
    ):
        for call in (
            lambda h: client.get("/api/recommend/u1", headers=h),
            lambda h: client.post("/api/feedback", json=event, headers=h),
            lambda h: client.post("/api/items", json={"title": "New"}, headers=h),
        ):
            out = call(headers)
            assert out.status_code == status, out.text
            assert out.headers["WWW-Authenticate"] == "Bearer" and "key" in out.json()["error"]
    # reads that hold no user's data are open
    assert client.post("/api/recommend", json={"history": ["m3"]}).status_code == 200
    assert client.get("/api/items/m3/similar").status_code == 200


def test_without_configured_keys_writes_are_refused(service, tiny_dataset, tiny_encoder):
    app = create_app(make_chat_service(tiny_dataset, tiny_encoder), recommendations=service)
    with TestClient(app) as client:
        out = client.post(
            "/api/feedback", json={"user_id": "u1", "item_id": "m3", "timestamp": 1}, headers=AUTH
        )
        assert out.status_code == 403 and "MMSRAREC_API_KEY" in out.json()["error"]


def test_keys_come_from_the_environment_or_as_digests_from_the_config(monkeypatch):
    from mmsrarec.config import load_settings
    from mmsrarec.web.auth import digest

    monkeypatch.setenv("MMSRAREC_API_KEY", " alpha , beta")
    keys = ApiKeys.from_settings(load_settings(api_key_sha256=[digest("gamma").upper()]))
    assert all(keys.accepts(key) for key in ("alpha", "beta", "gamma"))
    assert not any(keys.accepts(key) for key in ("", "alph", "alpha ", "delta"))
    assert "alpha" not in repr(keys.digests)


def test_an_anonymous_history_is_ranked_with_filters(client):
    out = client.post("/api/recommend", json={"history": ["m3", "m4"], "k": 3})
    assert out.status_code == 200, out.text
    body = out.json()
    assert body["user_id"] == "anonymous" and len(body["recommendations"]) == 3
    assert not {"m3", "m4"} & set(ids(body))
    assert body["similar_users"] and body["model_version"] == "v0"
    only = client.post(
        "/api/recommend", json={"history": ["m3"], "k": 5, "filters": {"only": ["m5", "m9", "m3"]}}
    )
    assert sorted(ids(only.json())) == ["m5", "m9"]
    excluded = client.post(
        "/api/recommend", json={"history": ["m3"], "k": 38, "filters": {"exclude": ["m5"]}}
    )
    assert "m5" not in ids(excluded.json()) and len(ids(excluded.json())) == 38
    nothing = client.post(
        "/api/recommend", json={"history": ["m3"], "filters": {"only": ["m3"]}}
    ).json()
    assert nothing["recommendations"] == [] and nothing["thread_id"] is None


@pytest.mark.parametrize(
    ("body", "status", "says"),
    [
        ({"history": []}, 422, "`history`"),
        ({"history": ["nope"]}, 404, "unknown item id `nope`"),
        ({"history": ["m3"], "k": 0}, 422, "`k`"),
        ({"history": ["m3"], "k": 101}, 422, "`k`"),
        ({"history": ["m3"], "filters": {"genre": "x"}}, 422, "`filters.genre`"),
        ({"history": "m3"}, 422, "`history`"),
    ],
)
def test_bad_anonymous_requests_are_a_clear_4xx(client, body, status, says):
    out = client.post("/api/recommend", json=body)
    assert out.status_code == status and says in out.json()["error"], out.text


def test_unknown_users_and_items_are_404(client):
    out = client.get("/api/recommend/ghost", headers=AUTH)
    assert out.status_code == 404 and "unknown user id `ghost`" in out.json()["error"]
    out = client.get("/api/items/ghost/similar")
    assert out.status_code == 404 and "no item `ghost`" in out.json()["error"]


def test_similar_items_rank_what_follows_an_item(client):
    out = client.get("/api/items/m3/similar", params={"k": 5})
    assert out.status_code == 200 and len(ids(out.json())) == 5 and "m3" not in ids(out.json())


def test_feedback_moves_the_next_answer_at_once(client, service):
    before = client.get("/api/recommend/u1", params={"k": 40}, headers=AUTH).json()
    chosen = ids(before)[-1]
    out = client.post(
        "/api/feedback",
        json={"user_id": "u1", "item_id": chosen, "timestamp": 5000, "kind": "purchase"},
        headers=AUTH,
    )
    assert out.status_code == 201, out.text
    assert out.json() == {
        "seq": 1,
        "user_id": "u1",
        "item_id": chosen,
        "timestamp": 5000.0,
        "kind": "purchase",
    }
    after = client.get("/api/recommend/u1", params={"k": 40}, headers=AUTH).json()
    assert chosen not in ids(after) and ids(after) != ids(before)
    load = next(
        r
        for r in thread_trace(service.graph.checkpointer, after["thread_id"])
        if r["node"] == "load_user"
    )
    assert load["outputs"]["history"][-1] == chosen
    # a user the data does not know exists from its first event on
    assert client.get("/api/recommend/newbie", headers=AUTH).status_code == 404
    client.post(
        "/api/feedback", json={"user_id": "newbie", "item_id": "m7", "timestamp": 1}, headers=AUTH
    )
    fresh = client.get("/api/recommend/newbie", params={"k": 3}, headers=AUTH)
    assert fresh.status_code == 200 and "m7" not in ids(fresh.json())


def test_a_replayed_idempotency_key_never_doubles_a_row(client, service):
    event = {"user_id": "u2", "item_id": "m3", "timestamp": 7000}
    headers = {**AUTH, "Idempotency-Key": "retry-1"}
    first = client.post("/api/feedback", json=event, headers=headers)
    again = client.post("/api/feedback", json=event, headers=headers)
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json() and again.headers["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first.headers
    assert [e.item_id for e in service.store.feedback_of("u2")] == ["m3"]
    other = client.post("/api/feedback", json={**event, "item_id": "m4"}, headers=headers)
    assert other.status_code == 409 and "Idempotency-Key" in other.json()["error"]
    item = {"title": "Lunar Tea", "description": "A space opera oolong."}
    made = client.post("/api/items", json=item, headers={**AUTH, "Idempotency-Key": "i-1"})
    remade = client.post("/api/items", json=item, headers={**AUTH, "Idempotency-Key": "i-1"})
    assert remade.json()["item_id"] == made.json()["item_id"]
    assert remade.headers["Idempotent-Replayed"] == "true"
    assert len(service.store.items_after(0)) == 1
    # without a key, each call is a new event
    client.post("/api/feedback", json=event, headers=AUTH)
    assert len(service.store.feedback_of("u2")) == 2


def test_a_new_item_is_recommendable_at_once_and_gets_keywords_in_the_background(client, service):
    out = client.post(
        "/api/items",
        json={"title": "Zorblax Saga", "description": "A space opera with zorblax."},
        headers=AUTH,
    )
    assert out.status_code == 201, out.text
    new = out.json()["item_id"]
    assert new.startswith("item-") and out.json()["title"] == "Zorblax Saga"
    assert client.get(f"/api/items/{new}/similar", params={"k": 3}).status_code == 200
    ranked = client.post("/api/recommend", json={"history": ["m3"], "k": 50}).json()
    assert new in ids(ranked)
    # its own id is usable in feedback and histories at once
    assert (
        client.post(
            "/api/feedback", json={"user_id": "u3", "item_id": new, "timestamp": 9000}, headers=AUTH
        ).status_code
        == 201
    )
    assert service.backfill.drain(timeout_s=30)
    item = service.served.context.dataset.by_id(new)
    assert service.served.context.keywords.get_many([item])[new]  # the critic loop ran
    taken = client.post("/api/items", json={"title": "Again", "item_id": "m3"}, headers=AUTH)
    assert taken.status_code == 409 and "already exists" in taken.json()["error"]
    blank = client.post("/api/items", json={"title": "   "}, headers=AUTH)
    assert blank.status_code == 422


def test_the_ranker_is_told_about_new_items(tiny_dataset, tiny_encoder, settings):
    chat = make_chat_service(tiny_dataset, tiny_encoder)
    service = make_recommendation_service(chat, settings, ranker=True)
    written = service.add_item("Zorblax Saga", "zorblax zorblax", item_id="z1")
    assert service.served.context.ranker.inner.added == ["z1"] and not written.replayed
    assert service.served.model == "word-ranker"
    service.add_feedback("anyone", "m5", 1.0)
    # the new item shares its only word with nothing but itself: a history of it ranks
    # the other zorblax item first
    service.add_item("Zorblax Two", "zorblax", item_id="z2")
    top = service.recommend_history(["z1"], k=1)
    assert ids(top) == ["z2"] and service.served.context.ranker.inner.added == ["z1", "z2"]
    # a second process on the same database serves both at start
    again = make_recommendation_service(
        make_chat_service(tiny_dataset, tiny_encoder), settings, ranker=True
    )
    assert again.served.context.ranker.inner.added == ["z1", "z2"] and again.served.items_seq == 2


def test_debias_per_request_lowers_popular_items_and_is_a_part_of_each_score(
    tiny_dataset, tiny_encoder, settings
):
    from mmsrarec.recommenders.debias import DEBIAS_PART, log_popularity

    chat = make_chat_service(tiny_dataset, tiny_encoder)
    service = make_recommendation_service(chat, settings, ranker=True)
    popularity = log_popularity(tiny_dataset)

    def mean_popularity(answer: dict) -> float:
        return sum(popularity[tiny_dataset.index_of(i)] for i in ids(answer)) / len(ids(answer))

    app = create_app(chat, recommendations=service, keys=ApiKeys.of(KEY))
    with TestClient(app) as client:
        ask = {"history": ["m3", "m4"], "k": 5}
        off = client.post("/api/recommend", json={**ask, "debias": 0}).json()
        strong = client.post("/api/recommend", json={**ask, "debias": 10}).json()
        user = client.get("/api/recommend/u1", params={"k": 5, "debias": 10}, headers=AUTH)
        negative = client.post("/api/recommend", json={**ask, "debias": -1})
        too_big = client.get("/api/recommend/u1", params={"debias": 11}, headers=AUTH)
    assert all(DEBIAS_PART not in rec["contributions"] for rec in off["recommendations"])
    assert all(DEBIAS_PART in rec["contributions"] for rec in strong["recommendations"])
    assert mean_popularity(strong) < mean_popularity(off)
    assert (
        user.status_code == 200
        and DEBIAS_PART in user.json()["recommendations"][0]["contributions"]
    )
    assert negative.status_code == 422 and "`debias`" in negative.json()["error"]
    assert too_big.status_code == 422 and "debias" in too_big.json()["error"]


def test_evidence_window_per_request_sets_how_far_back_the_cited_history_goes(
    tiny_dataset, tiny_encoder, settings
):
    chat = make_chat_service(tiny_dataset, tiny_encoder)
    service = make_recommendation_service(chat, settings, ranker=True)
    app = create_app(chat, recommendations=service, keys=ApiKeys.of(KEY))
    with TestClient(app) as client:
        ask = {"history": ["m3", "m4"], "k": 5}
        default = client.post("/api/recommend", json=ask).json()["recommendations"]
        none = client.post("/api/recommend", json={**ask, "evidence_window": 0}).json()
        newest = client.post("/api/recommend", json={**ask, "evidence_window": 1}).json()
        user = client.get("/api/recommend/u1", params={"k": 5, "evidence_window": 0},
                          headers=AUTH).json()  # fmt: skip
        too_big = client.post("/api/recommend", json={**ask, "evidence_window": 501})
    assert any(rec["cited_history"] for rec in default)
    assert all(rec["cited_history"] == [] for rec in none["recommendations"])
    assert ids(none) == [rec["item_id"] for rec in default]  # the ranking does not change
    cited = [rec["cited_history"] for rec in newest["recommendations"]]
    assert ["m4"] in cited and all(c in ([], ["m4"]) for c in cited)  # the newest item alone
    assert all(rec["cited_history"] == [] for rec in user["recommendations"])
    assert too_big.status_code == 422 and "evidence_window" in too_big.json()["error"]


def png() -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (4, 4), "red").save(buffer, format="PNG")
    return buffer.getvalue()


def test_item_images_must_open_with_pillow(client, service, settings):
    good = base64.b64encode(png()).decode()
    out = client.post("/api/items", json={"title": "Red", "image": good}, headers=AUTH)
    assert out.status_code == 201, out.text
    item = service.served.context.dataset.by_id(out.json()["item_id"])
    assert (
        item.image and item.image.endswith(".png") and item.image.startswith(str(settings.run_dir))
    )
    fake = base64.b64encode(b"just some text, named fake.png").decode()
    out = client.post("/api/items", json={"title": "Fake", "image": fake}, headers=AUTH)
    assert out.status_code == 422 and "Pillow" in out.json()["error"]
    out = client.post("/api/items", json={"title": "Bad", "image": "%%%"}, headers=AUTH)
    assert out.status_code == 422 and "base64" in out.json()["error"]


def test_not_prepared_is_503(client, service, monkeypatch):
    def missing(*args, **kwargs):
        raise NotPreparedError("no prepared dataset: run `mmsrarec data prepare`")

    monkeypatch.setattr(service, "recommend_history", missing)
    out = client.post("/api/recommend", json={"history": ["m3"]})
    assert out.status_code == 503 and "data prepare" in out.json()["error"]

"""End to end over HTTP: the real app, a real Redis, a model trained on synthetic data."""

import json

import pytest

from model.bundle import load_bundle
from tests.e2e.conftest import API_KEY
from tests.e2e.test_cli import cli, genrec

AUTH = {"X-API-Key": API_KEY}


@pytest.fixture(scope="module")
def bundle(tiny_bundle):
    return load_bundle(tiny_bundle)


def assert_problem(response, status):
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["status"] == status and body["detail"]
    return body


def test_health_and_readiness(client, bundle):
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz").json()
    assert ready == {"status": "ready", "model_version": bundle.version, "redis": True}


def test_recommend_by_user_returns_distinct_unseen_catalog_items(client, bundle):
    user = "u7"
    r = client.post("/v1/recommend", json={"user_id": user, "k": 10})
    assert r.status_code == 200, r.text
    body = r.json()
    ids = [it["item_id"] for it in body["items"]]
    assert len(ids) == len(set(ids)) == 10
    assert set(ids) <= set(bundle.catalog.item_ids)
    assert not set(ids) & set(bundle.histories[user])
    assert all(it["title"] for it in body["items"])
    assert [it["score"] for it in body["items"]] == sorted(
        (it["score"] for it in body["items"]), reverse=True
    )
    assert body["model_version"] == bundle.version and body["beam_width"] == body["beam_widths"][-1]
    for it in body["items"]:
        code = bundle.semantic_ids.codes[bundle.catalog.index[it["item_id"]]].tolist()
        assert it["semantic_id"] == code


def test_recommend_by_explicit_history(client, bundle):
    history = ["i3", "i4", "i5"]
    body = client.post("/v1/recommend", json={"history": history, "k": 5, "beam_width": 16}).json()
    assert len(body["items"]) == 5 and body["history_length"] == 3
    assert not {it["item_id"] for it in body["items"]} & set(history)
    assert body["beam_width"] <= 16


def test_events_feed_the_history_that_recommendations_read(client):
    events = [
        {"user_id": "new-user", "item_id": f"i{n}", "timestamp": 1000 + n} for n in (20, 21, 22)
    ]
    events.append({"user_id": "new-user", "item_id": "brand-new-item"})
    r = client.post("/v1/events", json={"events": events}, headers=AUTH)
    assert r.json() == {"accepted": 4, "unknown_items": 1}
    history = client.get("/v1/users/new-user/history").json()
    assert history == {"user_id": "new-user", "items": ["i20", "i21", "i22", "brand-new-item"]}
    body = client.post("/v1/recommend", json={"user_id": "new-user", "k": 3}).json()
    assert body["history_length"] == 3  # the unknown item is skipped, not an error
    assert not {it["item_id"] for it in body["items"]} & {"i20", "i21", "i22"}


def test_history_is_trimmed_to_fifty(client):
    events = [{"user_id": "heavy", "item_id": f"i{n % 100}"} for n in range(80)]
    assert client.post("/v1/events", json={"events": events}, headers=AUTH).status_code == 200
    items = client.get("/v1/users/heavy/history").json()["items"]
    assert items == [f"i{n % 100}" for n in range(30, 80)]


def test_events_need_the_api_key(client):
    body = {"events": [{"user_id": "u1", "item_id": "i1"}]}
    assert_problem(client.post("/v1/events", json=body), 401)
    assert_problem(client.post("/v1/events", json=body, headers={"X-API-Key": "wrong"}), 401)


def test_curl_style_form_content_type_is_read_as_json(client):
    r = client.post(
        "/v1/recommend",
        content=json.dumps({"user_id": "u7", "k": 2}),
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert r.status_code == 200 and len(r.json()["items"]) == 2


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({"history": ["i1", "no-such-item"], "k": 5}, 422, None),
        ({"history": [], "k": 5}, 422, "history"),
        ({"user_id": "u7", "k": 0}, 422, "k"),
        ({"user_id": "u7", "k": -3}, 422, "k"),
        ({"user_id": "u7", "k": 10**9}, 422, "k"),
        ({"user_id": "u7", "k": "5"}, 422, "k"),
        ({"user_id": "u7", "k": 5.0}, 422, "k"),
        ({"user_id": "u7", "k": True}, 422, "k"),
        ({"user_id": 7, "k": 5}, 422, "user_id"),
        ({"user_id": "u7", "exclude_seen": "yes"}, 422, "exclude_seen"),
        ({"user_id": "u7", "beam_width": 0}, 422, "beam_width"),
        ({"user_id": "u7", "surprise": 1}, 422, "surprise"),
        ({"user_id": "bad id with spaces"}, 422, "user_id"),
        ({"user_id": "x" * 500}, 422, "user_id"),
        ({"k": 5}, 422, None),
        ({"history": ["i1"] * 201}, 422, "history"),
        ([1, 2, 3], 422, None),
    ],
)
def test_bad_recommend_input_gets_a_clear_4xx(client, body, status, field):
    problem = assert_problem(client.post("/v1/recommend", json=body), status)
    if field:
        assert any(field in map(str, e["loc"]) for e in problem["errors"])


def test_unknown_item_error_names_the_items(client):
    problem = assert_problem(client.post("/v1/recommend", json={"history": ["i1", "nope"]}), 422)
    assert problem["unknown_items"] == ["nope"]


def test_k_larger_than_the_unseen_catalog_is_refused(client, bundle):
    n = len(bundle.catalog)
    assert_problem(
        client.post("/v1/recommend", json={"history": bundle.catalog.item_ids[: n - 5], "k": 10}),
        422,
    )


def test_malformed_json_is_400(client):
    assert_problem(
        client.post(
            "/v1/recommend",
            content=b'{"user_id": "u7",',
            headers={"content-type": "application/json"},
        ),
        400,
    )


def test_oversized_body_is_413(client):
    big = {"events": [{"user_id": "u1", "item_id": "i1"}] * 1000}
    assert_problem(client.post("/v1/events", json=big, headers=AUTH), 413)
    assert_problem(
        client.post(
            "/v1/recommend", content=b"x" * 20000, headers={"content-type": "application/json"}
        ),
        413,
    )


def test_non_json_media_type_is_415(client):
    assert_problem(
        client.post("/v1/recommend", content=b"<xml/>", headers={"content-type": "text/xml"}), 415
    )


def test_unknown_user_is_404(client):
    assert_problem(client.post("/v1/recommend", json={"user_id": "nobody"}), 404)


@pytest.mark.parametrize(
    ("events", "field"),
    [
        ([], "events"),
        ([{"user_id": "u1"}], "item_id"),
        ([{"user_id": "u1", "item_id": "i1", "timestamp": -1}], "timestamp"),
        ([{"user_id": "u1", "item_id": "i1", "timestamp": "yesterday"}], "timestamp"),
        ([{"user_id": "u1", "item_id": "i 1"}], "item_id"),
    ],
)
def test_bad_events_get_422(client, events, field):
    problem = assert_problem(client.post("/v1/events", json={"events": events}, headers=AUTH), 422)
    assert any(field in map(str, e["loc"]) for e in problem["errors"])


def test_bad_paths_and_methods(client):
    assert_problem(client.get("/v1/users/" + "x" * 300 + "/history"), 422)
    assert_problem(client.get("/v1/nothing"), 404)
    assert_problem(client.get("/v1/recommend"), 405)


def test_openapi_documents_the_contract(client):
    spec = client.get("/openapi.json").json()
    assert {
        "/v1/recommend",
        "/v1/events",
        "/v1/users/{user_id}/history",
        "/healthz",
        "/readyz",
        "/v1/items",
        "/v1/stats",
    } <= set(spec["paths"])
    assert "/" not in spec["paths"]  # the demo page is not part of the API


def test_recommend_offline_gives_the_items_the_api_gives(tiny_bundle, client):
    for ask in (["--user", "u3"], ["--user", "u42", "-k", "5"], ["--history", "i3,i4,i5"]):
        run = cli("recommend", "--bundle", str(tiny_bundle), "--json", *ask)
        assert run.exit_code == 0, run.output
        offline = json.loads(run.stdout)
        body = {"k": int(ask[3]) if len(ask) > 2 else 10}
        body |= {"user_id": ask[1]} if ask[0] == "--user" else {"history": ask[1].split(",")}
        online = client.post("/v1/recommend", json=body).json()
        assert offline == online
    table = genrec("recommend", "--bundle", str(tiny_bundle), "--user", "u3")  # a real process
    assert table.returncode == 0, table.stderr
    lines = table.stdout.strip().splitlines()
    assert len(lines) == 11 and online["model_version"] in lines[0]  # a header and ten items


def test_items_by_title_words_most_popular_first(client, bundle):
    r = client.get("/v1/items", params={"q": "item 1", "limit": 5})
    assert r.status_code == 200, r.text
    body = r.json()
    titles = bundle.catalog.titles
    matching = [j for j, t in enumerate(titles) if "item" in t.lower() and "1" in t]
    assert body["total"] == len(matching) < len(titles) and len(body["items"]) == 5
    assert all("item" in i["title"].lower() and "1" in i["title"] for i in body["items"])
    popularity = [i["popularity"] for i in body["items"]]
    assert popularity == sorted(popularity, reverse=True)
    assert popularity[0] == max(int(bundle.catalog.popularity[j]) for j in matching)
    two_words = client.get("/v1/items", params={"q": "1 ITEM"}).json()
    assert two_words["total"] == body["total"]  # every word, any order, any case
    assert client.get("/v1/items", params={"q": "item 11"}).json()["total"] == 11  # 11, 110-119


def test_items_by_id_keep_the_order_given_and_skip_unknown_ones(client):
    r = client.get("/v1/items?id=i7&id=nope&id=i3")
    assert r.status_code == 200, r.text
    assert [i["item_id"] for i in r.json()["items"]] == ["i7", "i3"]
    popular = client.get("/v1/items", params={"limit": 3}).json()
    assert len(popular["items"]) == 3 and popular["total"] == 120


@pytest.mark.parametrize(
    "query",
    [
        "q=" + "x" * 101,
        "q=",
        "q=%20%20",
        "limit=0",
        "limit=51",
        "limit=5.0",
        "limit=true",
        "q=a&id=i1",
        "id=bad%20id",
        "&".join(["id=i1"] * 101),
        "surprise=1",
    ],
)
def test_bad_item_queries_get_a_clear_422(client, query):
    assert_problem(client.get(f"/v1/items?{query}"), 422)


def test_stats_follow_the_recommendations_served(client, bundle):
    for user in ("u10", "u11", "u12"):
        assert client.post("/v1/recommend", json={"user_id": user, "k": 5}).status_code == 200
    s = client.get("/v1/stats").json()
    assert s["model_version"] == bundle.version
    assert s["requests_per_s"] > 0 and s["window_s"] > 0
    assert 0 < s["p50_ms"] <= s["p99_ms"]
    assert s["beam_width"] == 64 and s["mean_beam_width"] > 0
    assert s["queue_depth"] == 0 and 0 <= s["cache_hit_rate"] <= 1


def test_every_response_says_how_long_the_server_took(client):
    r = client.post("/v1/recommend", json={"user_id": "u13", "k": 3})
    took = r.headers["server-timing"]
    assert took.startswith("app;dur=") and float(took.removeprefix("app;dur=")) > 0


def test_demo_page_and_its_assets_come_from_the_app(client):
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "default-src 'self'" in page.headers["content-security-policy"]
    for asset, kind in (("/static/app.js", "javascript"), ("/static/style.css", "text/css")):
        assert f'"{asset}"' in page.text
        r = client.get(asset)
        assert r.status_code == 200 and kind in r.headers["content-type"], asset
    assert_problem(client.get("/static/../service/app.py"), 404)


def test_api_docs_pages_use_assets_served_here(client):
    for page, assets in (
        ("/docs", ["swagger-ui-bundle.js", "swagger-ui.css"]),
        ("/redoc", ["redoc.standalone.js"]),
    ):
        html = client.get(page).text
        assert "cdn." not in html, page
        for asset in assets:
            path = f"/static-offline-docs/{asset}"
            assert path in html and client.get(path).status_code == 200, (page, asset)

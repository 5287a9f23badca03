"""The photo sources: the Unsplash client against a fake server over real HTTP, and the demo."""

from __future__ import annotations

import json
import pickle
import socket
import subprocess
import sys
import time
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import pytest
import requests

from filestore.photo_pool import FilePhotoPoolStore
from jobs import photos
from jobs.photos import (
    BATCH_SIZE,
    RESULT_KEYS,
    URL_SIZES,
    DemoSource,
    PermanentPhotoError,
    PhotoPool,
    PhotoSourceError,
    RateLimited,
    TransientPhotoError,
    UnsplashSource,
    results,
    utm_link,
)
from tests import fake_unsplash
from tests.fake_unsplash import FakeUnsplash

DEMO_DIR = Path(__file__).resolve().parent.parent / "jobs" / "static" / "jobs" / "demo"
UTM = "utm_source=jobs_test&utm_medium=referral"


@pytest.fixture
def fake():
    with FakeUnsplash() as server:
        yield server


def make_source(url: str, **kwargs) -> UnsplashSource:
    options = {"access_key": "test-key", "app_name": "jobs_test", "timeout": (2, 5)}
    return UnsplashSource(api_url=url, **{**options, **kwargs})


@pytest.fixture
def source(fake):
    return make_source(fake.url)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# --- The request ---


def test_it_sends_the_documented_request(fake, source):
    source.fetch_batch(BATCH_SIZE)

    [request] = fake.requests
    assert request.path == "/photos/random"
    assert request.query == {
        "topics": ["xjPR4hlkBGA"],
        "count": [str(BATCH_SIZE)],
        "content_filter": ["high"],
    }
    assert request.headers["Authorization"] == "Client-ID test-key"
    assert request.headers["Accept-Version"] == "v1"
    assert request.headers["Cache-Control"] == "no-cache"


def test_every_call_sends_the_request_of_its_count_afresh(fake, source):
    # The request is prepared once per count and sent as it is: each call
    # still reaches the API, with its own count and nothing of an earlier answer.
    source.fetch_batch(2)
    source.fetch_batch(3)
    source.fetch_batch(2)

    first, other, again = fake.requests
    assert [len(fake.requests), first.query["count"], other.query["count"]] == [3, ["2"], ["3"]]
    assert again == first
    assert fake.calls == 3


def test_cookies_the_api_sets_are_not_sent_back(fake, source):
    # Only the Authorization header authenticates; a CDN's cookie is not kept.
    fake.set_cookie = "cdn_session=abc123; Path=/"
    source.fetch_batch(1)
    source.fetch_batch(2)  # a count not asked before: a request prepared now

    assert [request.headers.get("Cookie") for request in fake.requests] == [None, None]
    assert len(source.session.cookies) == 0


def test_it_uses_the_configured_topic_and_trims_a_trailing_slash(fake):
    make_source(fake.url + "/", topic_id="Fzo3zuOHN6w").fetch_batch(1)

    [request] = fake.requests
    assert request.path == "/photos/random"
    assert request.query["topics"] == ["Fzo3zuOHN6w"]


def test_it_takes_the_environments_proxy_settings_once(fake, monkeypatch, tmp_path):
    # A proxy for everything but the fake's host: the calls still reach the fake.
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:9")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    bypassing = make_source(fake.url)
    assert bypassing.session.proxies == {}
    assert len(bypassing.fetch_batch(1)) == 1

    monkeypatch.setenv("NO_PROXY", "example.org")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(tmp_path / "ca.pem"))
    proxied = make_source("https://api.unsplash.com")
    assert proxied.session.proxies["https"] == "http://127.0.0.1:9"
    assert proxied.session.verify == str(tmp_path / "ca.pem")
    assert not proxied.session.trust_env  # not looked up again at every call


def test_a_netrc_entry_does_not_replace_the_access_key(fake, monkeypatch, tmp_path):
    netrc = tmp_path / "netrc"
    netrc.write_text("machine 127.0.0.1 login someone password secret\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    make_source(fake.url).fetch_batch(1)

    [request] = fake.requests
    assert request.headers["Authorization"] == "Client-ID test-key"


@pytest.mark.parametrize("count", [0, BATCH_SIZE + 1, -1, True, 2.0])
def test_it_refuses_a_count_the_api_does_not_accept(source, fake, count):
    with pytest.raises(ValueError):
        source.fetch_batch(count)
    assert fake.calls == 0


def test_it_refuses_to_start_without_an_access_key_or_app_name():
    with pytest.raises(ValueError, match="DemoSource"):
        UnsplashSource(api_url="http://127.0.0.1:9", access_key="", app_name="x")
    with pytest.raises(ValueError, match="app_name"):
        UnsplashSource(api_url="http://127.0.0.1:9", access_key="k", app_name="")


# --- The result ---


def test_each_result_has_every_key_and_survives_json(source):
    batch = source.fetch_batch(5)

    assert len(batch) == 5
    for photo in batch:
        assert tuple(photo) == RESULT_KEYS
        assert set(photo["urls"]) == set(URL_SIZES)
        assert photo["source"] == "unsplash"
    assert json.loads(json.dumps(batch)) == list(batch)


def test_it_maps_the_api_fields(fake, source):
    def edit(photo):
        photo.update(
            id="Dwu85P9SOIk",
            description="Ramen at night",
            alt_description="bowl of noodles",
            width=4000,
            height=6000,
            color="#c0a080",
            blur_hash="LFC$yHwc8^$yIAS$%M%00KxukYIp",
        )
        photo["urls"]["small"] = "https://images.example.test/photo?ixid=abc&w=400"
        photo["user"].update(username="jane", name="Jane Doe")

    fake.photo_hook = edit
    [photo] = source.fetch_batch(1)

    assert photo["photo_id"] == "Dwu85P9SOIk"
    assert photo["description"] == "Ramen at night"
    assert photo["alt_description"] == "bowl of noodles"
    assert (photo["width"], photo["height"]) == (4000, 6000)
    assert photo["color"] == "#c0a080"
    assert photo["blur_hash"] == "LFC$yHwc8^$yIAS$%M%00KxukYIp"
    assert photo["urls"]["small"] == "https://images.example.test/photo?ixid=abc&w=400"
    assert photo["photographer_name"] == "Jane Doe"
    assert photo["photographer_username"] == "jane"


def test_links_carry_the_referral_parameters(fake, source):
    def edit(photo):
        photo["links"]["html"] = "https://unsplash.com/photos/Dwu85P9SOIk"
        photo["user"]["links"]["html"] = "https://unsplash.com/@jane"

    fake.photo_hook = edit
    [photo] = source.fetch_batch(1)

    assert photo["photographer_url"] == f"https://unsplash.com/@jane?{UTM}"
    assert photo["photo_url"] == f"https://unsplash.com/photos/Dwu85P9SOIk?{UTM}"
    assert photo["unsplash_url"] == f"https://unsplash.com/?{UTM}"


@pytest.mark.parametrize(
    "url",
    [
        "https://unsplash.com/photos/Dwu85P9SOIk",
        "https://unsplash.com/",
        "https://unsplash.com",
        "http://127.0.0.1:8000/web/@jane",
        "https://unsplash.com/@j%C3%A4ne",
        "https://unsplash.com/photos/a?utm_source=other&x=1",
        "https://unsplash.com/photos/a#top",
        "HTTPS://Unsplash.com/photos/a",
    ],
)
def test_a_referral_link_is_the_same_however_it_is_made(url):
    """A page's address without a query is extended as it is; any other is taken apart."""
    assert utm_link(url, "jobs test") == results._utm_link_parsed(url, "jobs test")


def test_description_falls_back_to_alt_description_then_none(fake, source):
    fake.photo_hook = lambda photo: photo.update(description=None, alt_description="a pie")
    [photo] = source.fetch_batch(1)
    assert (photo["description"], photo["alt_description"]) == ("a pie", "a pie")

    fake.photo_hook = lambda photo: photo.update(description=None, alt_description=None)
    [photo] = source.fetch_batch(1)
    assert (photo["description"], photo["alt_description"]) == (None, None)


def test_nullable_fields_may_be_null(fake, source):
    fake.photo_hook = lambda photo: photo.update(color=None, blur_hash=None)
    [photo] = source.fetch_batch(1)
    assert (photo["color"], photo["blur_hash"]) == (None, None)


def test_it_accepts_a_single_photo_object(fake, source):
    fake.behaviour = "object"
    batch = source.fetch_batch(10)

    assert len(batch) == 1
    assert batch[0]["photo_id"].startswith("fake")


def test_the_fake_sends_an_object_without_count_and_an_array_with_it(fake):
    headers = {"Authorization": "Client-ID k"}
    single = requests.get(f"{fake.url}/photos/random", headers=headers, timeout=5).json()
    several = requests.get(f"{fake.url}/photos/random?count=1", headers=headers, timeout=5).json()

    assert isinstance(single, dict)
    assert isinstance(several, list)
    assert len(several) == 1


def pool_of(tmp_path) -> PhotoPool:
    return PhotoPool(FilePhotoPoolStore(tmp_path / "photos", tmp_path / "tmp", ttl_seconds=600))


def test_a_photo_the_api_repeats_goes_to_one_job(tmp_path, fake, source):
    fake.behaviour = "duplicates"

    taken = pool_of(tmp_path).take_many(source.fetch_batch, 10, batch_size=10)

    ids = [photo["photo_id"] for photo in taken if isinstance(photo, dict)]
    assert len(ids) == 10 and len(set(ids)) == 10
    assert fake.calls == 2  # each answer held 5 distinct photos, each twice


def test_an_empty_answer_is_a_transient_failure(tmp_path, fake, source):
    fake.behaviour = "empty_list"
    assert source.fetch_batch(5) == []

    [error] = pool_of(tmp_path).take_many(source.fetch_batch, 1)

    assert type(error) is TransientPhotoError and error.code == "photo_source_empty"
    assert "no photos" in error.message


def test_it_records_the_rate_limit_headers(fake, source):
    fake.remaining = 50
    assert source.last_rate_limit is None

    batch = source.fetch_batch(3)

    assert source.last_rate_limit == {"remaining": 49, "limit": 50}
    assert (batch.remaining, batch.limit, batch.source) == (49, 50, "unsplash")


def test_a_success_that_spends_the_budget_still_returns_its_photos(fake, source):
    fake.remaining = 1

    batch = source.fetch_batch(BATCH_SIZE)

    assert len(batch) == BATCH_SIZE
    assert batch.remaining == 0


def test_a_batch_is_as_large_as_the_api_allows(fake, source):
    assert BATCH_SIZE == fake_unsplash.MAX_COUNT

    assert len(source.fetch_batch(BATCH_SIZE)) == BATCH_SIZE


# --- Errors ---

ERRORS = [
    ("rate_limited_403", RateLimited, "unsplash_rate_limited", "limit is used up"),
    ("rate_limited_429", RateLimited, "unsplash_rate_limited", "limit is used up"),
    ("unauthorized_401", PermanentPhotoError, "unsplash_unauthorized", "UNSPLASH_ACCESS_KEY"),
    ("forbidden_403", PermanentPhotoError, "unsplash_forbidden", "permission"),
    ("bad_request_400", PermanentPhotoError, "unsplash_bad_request", "configuration"),
    ("not_found_404", PermanentPhotoError, "unsplash_not_found", "UNSPLASH_API_URL"),
    ("server_error_500", TransientPhotoError, "unsplash_unavailable", "HTTP 500"),
    ("unavailable_503", TransientPhotoError, "unsplash_unavailable", "HTTP 503"),
    ("malformed", TransientPhotoError, "unsplash_malformed", "not valid JSON"),
    ("invalid_photo", TransientPhotoError, "unsplash_malformed", "urls"),
    ("empty", TransientPhotoError, "unsplash_empty", "no photos"),
    ("drop", TransientPhotoError, "unsplash_unreachable", "connection"),
]


@pytest.mark.parametrize(("behaviour", "error", "code", "words"), ERRORS)
def test_each_failure_maps_to_its_error(fake, source, behaviour, error, code, words):
    fake.behaviour = behaviour

    with pytest.raises(PhotoSourceError) as caught:
        source.fetch_batch(5)

    assert type(caught.value) is error
    assert caught.value.code == code
    assert words.lower() in caught.value.message.lower()
    assert str(caught.value) == caught.value.message
    assert fake.calls == 1  # no retries inside the client


def test_an_invalid_key_tells_the_operator_what_to_do(fake):
    source = make_source(fake.url, access_key="revoked")
    fake.access_key = "the-real-key"

    with pytest.raises(PermanentPhotoError) as caught:
        source.fetch_batch(1)

    assert caught.value.code == "unsplash_unauthorized"
    assert "OAuth error: The access token is invalid" in caught.value.message
    assert "set a valid access key" in caught.value.message


def test_only_a_rate_limit_is_rate_limited(fake, source):
    for behaviour in ("server_error_500", "forbidden_403", "malformed"):
        fake.behaviour = behaviour
        with pytest.raises(PhotoSourceError) as caught:
            source.fetch_batch(1)
        assert not isinstance(caught.value, RateLimited), behaviour


def test_retry_after_is_passed_on(fake, source):
    fake.retry_after = 42
    for behaviour in ("rate_limited_429", "unavailable_503"):
        fake.behaviour = behaviour
        with pytest.raises(TransientPhotoError) as caught:
            source.fetch_batch(1)
        assert caught.value.retry_after == 42


def test_a_spent_budget_is_a_rate_limit_whatever_the_403_body_says(fake, source):
    fake.remaining = 1
    fake.behaviour = "forbidden_403"

    with pytest.raises(RateLimited):
        source.fetch_batch(1)


def test_an_exhausted_budget_answers_rate_limited(fake, source):
    fake.remaining = 2
    source.fetch_batch(1)
    source.fetch_batch(1)

    with pytest.raises(RateLimited):
        source.fetch_batch(1)
    assert source.last_rate_limit == {"remaining": 0, "limit": 50}


def test_a_slow_server_times_out(fake):
    fake.behaviour = "slow"
    fake.slow_seconds = 5
    source = make_source(fake.url, timeout=(1, 0.2))

    started = time.monotonic()
    with pytest.raises(TransientPhotoError) as caught:
        source.fetch_batch(1)

    assert caught.value.code == "unsplash_timeout"
    assert "0.2 seconds" in caught.value.message
    assert time.monotonic() - started < 3


def test_a_refused_connection_is_transient():
    source = make_source(f"http://127.0.0.1:{free_port()}")

    with pytest.raises(TransientPhotoError) as caught:
        source.fetch_batch(1)

    assert caught.value.code == "unsplash_unreachable"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("id", None),
        ("id", ""),
        ("width", "4000"),
        ("height", 0),
        ("width", True),
        ("color", "red; background: url(x)"),
        ("description", 12),
        ("urls", None),
        ("user", "jane"),
        ("links", {}),
    ],
)
def test_an_ill_typed_field_is_a_malformed_response(fake, source, field, value):
    fake.photo_hook = lambda photo: photo.update({field: value})

    with pytest.raises(TransientPhotoError) as caught:
        source.fetch_batch(3)

    assert caught.value.code == "unsplash_malformed"
    assert field in caught.value.message


@pytest.mark.parametrize("field", ["id", "width", "urls", "user", "description", "blur_hash"])
def test_a_missing_field_is_a_malformed_response(fake, source, field):
    fake.photo_hook = lambda photo: photo.pop(field)

    with pytest.raises(TransientPhotoError) as caught:
        source.fetch_batch(1)

    assert caught.value.code == "unsplash_malformed"


@pytest.mark.parametrize(
    "link", ["javascript:alert(1)", " javascript:alert(1)", "java\tscript:x", "data:,x", "//x/y"]
)
def test_only_web_links_are_accepted(fake, source, link):
    fake.photo_hook = lambda photo: photo["urls"].update(thumb=link)

    with pytest.raises(TransientPhotoError) as caught:
        source.fetch_batch(1)

    assert caught.value.code == "unsplash_malformed"
    assert "urls.thumb" in caught.value.message


def test_web_links_are_accepted_in_either_case(fake, source):
    fake.photo_hook = lambda photo: photo["urls"].update(thumb="HTTPS://images.example/a.jpg")

    [photo] = source.fetch_batch(1)

    assert photo["urls"]["thumb"] == "HTTPS://images.example/a.jpg"


def test_one_bad_photo_spoils_the_answer(fake, source):
    served = []

    def edit(photo):
        served.append(photo["id"])
        if len(served) == 2:
            photo["user"]["links"]["html"] = None

    fake.photo_hook = edit
    with pytest.raises(TransientPhotoError, match=r"user\.links\.html"):
        source.fetch_batch(3)


def test_errors_survive_pickling():
    errors = [
        RateLimited("unsplash_rate_limited", "Limit reached.", retry_after=30.0),
        TransientPhotoError("unsplash_unavailable", "Down.", retry_after=None),
        PermanentPhotoError("unsplash_unauthorized", "Bad key."),
    ]
    for error in errors:
        copy = pickle.loads(pickle.dumps(error))
        assert type(copy) is type(error)
        assert copy.as_error() == error.as_error()
        assert getattr(copy, "retry_after", None) == getattr(error, "retry_after", None)


# --- The source in use ---


def test_without_an_access_key_the_demo_source_is_in_use(settings):
    settings.UNSPLASH_ACCESS_KEY = ""
    settings.STATIC_URL = "/assets/"

    assert photos.source_name() == "demo"
    assert isinstance(photos.source(), DemoSource)
    [photo] = photos.take_photos(1)
    assert photo["source"] == "demo"
    assert photo["urls"]["regular"].startswith("/assets/jobs/demo/")


def test_with_an_access_key_unsplash_is_in_use(settings, fake):
    settings.UNSPLASH_ACCESS_KEY = "configured-key"
    settings.UNSPLASH_API_URL = fake.url

    assert photos.source_name() == "unsplash"
    [photo] = photos.take_photos(1)

    assert photo["source"] == "unsplash"
    [request] = fake.requests
    assert request.headers["Authorization"] == "Client-ID configured-key"
    assert request.query["count"] == [str(BATCH_SIZE)]


# --- The demo source ---


def test_the_demo_source_needs_no_network(monkeypatch):
    def no_network(*args, **kwargs):
        raise AssertionError("the demo source opened a connection")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    batch = DemoSource(static_url="/static/", app_name="jobs_test").fetch_batch(BATCH_SIZE)

    assert len(batch) == BATCH_SIZE
    assert batch.source == "demo"


def test_demo_results_have_every_key_and_are_labelled_demo():
    batch = DemoSource(app_name="jobs_test").fetch_batch(12)

    for photo in batch:
        assert tuple(photo) == RESULT_KEYS
        assert photo["source"] == "demo"
        assert photo["photographer_name"] == "Demo kitchen"
        assert "demo" in photo["description"]
        assert photo["unsplash_url"] == f"https://unsplash.com/?{UTM}"
    assert json.loads(json.dumps(batch)) == list(batch)


def test_demo_ids_are_new_on_every_call():
    source = DemoSource(app_name="jobs_test")

    ids = [photo["photo_id"] for _ in range(20) for photo in source.fetch_batch(BATCH_SIZE)]

    assert len(set(ids)) == 20 * BATCH_SIZE


def test_demo_urls_point_at_files_that_exist():
    batch = DemoSource(static_url="/assets", app_name="jobs_test").fetch_batch(BATCH_SIZE)

    names = set()
    for photo in batch:
        for url in [*photo["urls"].values(), photo["photo_url"], photo["photographer_url"]]:
            assert url.startswith("/assets/jobs/demo/")
            assert (DEMO_DIR / url.removeprefix("/assets/jobs/demo/")).is_file()
        names.add(photo["urls"]["regular"])
    assert 8 <= len(names) <= 12


def test_the_demo_illustrations_are_small_valid_svg():
    illustrations = sorted(DEMO_DIR.glob("*.svg"))

    assert 8 <= len(illustrations) <= 12
    for path in illustrations:
        root = ElementTree.parse(path).getroot()
        assert root.tag == "{http://www.w3.org/2000/svg}svg"
        assert root.get("viewBox") == "0 0 800 600"
        assert path.stat().st_size < 10_000


# --- The fake server as a program ---


def test_the_fake_runs_from_the_command_line():
    port = free_port()
    script = Path(__file__).with_name("fake_unsplash.py")
    process = subprocess.Popen(
        [sys.executable, str(script), "--port", str(port), "--budget", "1"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        assert f"127.0.0.1:{port}" in process.stdout.readline()
        source = make_source(f"http://127.0.0.1:{port}")
        assert len(source.fetch_batch(2)) == 2
        with pytest.raises(RateLimited):
            source.fetch_batch(2)
    finally:
        process.terminate()
        process.wait(timeout=5)
    assert process.returncode == 0

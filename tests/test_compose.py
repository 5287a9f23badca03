"""The container setups: docker-compose.yml (one machine), docker-compose.cluster.yml
(Redis, two web servers, two workers, one proxy), the image and its health checks.

The compose files are checked as Compose itself reads them (``docker-compose
config``); no container is started, so no Docker engine is needed.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
import yaml

from tests.django_process import environment, run_python

ROOT = Path(__file__).resolve().parent.parent
ONE_MACHINE = "docker-compose.yml"
CLUSTER = "docker-compose.cluster.yml"
# Set by the image for every container, never taken from .env (whose values
# are those of `make run`); JOBS_PUBLISH is read by Compose itself.
CONTAINER_OWN = {"JOBS_DATA_DIR", "JOBS_HOST", "PORT", "JOBS_PUBLISH"}

needs_compose = pytest.mark.skipif(
    shutil.which("docker-compose") is None,
    reason="docker-compose is not installed (Debian package docker-compose; .ci/run installs it)",
)


def compose_config(file: str) -> dict:
    """The file as Compose resolves it, with no .env and no settings from this shell."""
    environ = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/tmp")}
    with tempfile.NamedTemporaryFile(suffix=".env") as no_settings:
        result = subprocess.run(
            ["docker-compose", "--env-file", no_settings.name, "-f", file, "config"],
            cwd=ROOT,
            env=environ,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode == 0, result.stderr
    return yaml.safe_load(result.stdout)


@pytest.fixture(scope="module")
def one_machine() -> dict:
    return compose_config(ONE_MACHINE)["services"]


@pytest.fixture(scope="module")
def cluster() -> dict:
    return compose_config(CLUSTER)["services"]


def seconds(duration: str) -> float:
    """A Compose duration ("90s", "1m30s", "1h") in seconds."""
    units = {"h": 3600, "m": 60, "s": 1, "ms": 0.001}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|h|m|s)", duration)
    assert parts and "".join(n + u for n, u in parts) == duration, duration
    return sum(float(number) * units[unit] for number, unit in parts)


def example_settings() -> dict[str, str]:
    lines = (ROOT / ".env.example").read_text().splitlines()
    pairs = (line.split("=", 1) for line in lines if re.match(r"[A-Z_]+=", line))
    return {name: value for name, value in pairs}


def long_running(services: dict) -> dict:
    return {name: s for name, s in services.items() if s.get("restart", "no") != "no"}


def web_services(services: dict) -> dict:
    return {
        name: s
        for name, s in services.items()
        if s.get("command", [])[:1] == ["deploy/web.sh"] and "setup" not in s["command"]
    }


def worker_services(services: dict) -> dict:
    return {name: s for name, s in services.items() if "qcluster" in s.get("command", [])}


def load_healthcheck():
    spec = importlib.util.spec_from_file_location("healthcheck", ROOT / "deploy/healthcheck.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# -- one machine ----------------------------------------------------------------


@needs_compose
def test_one_machine_is_a_web_server_and_a_worker_on_one_volume(one_machine):
    assert set(one_machine) == {"web", "worker"}
    assert one_machine["web"]["volumes"] == one_machine["worker"]["volumes"]
    assert one_machine["web"]["volumes"][0].startswith("jobs-data:/data")
    assert "JOBS_REDIS_URL" not in {
        name for name, value in one_machine["worker"]["environment"].items() if value
    }
    assert one_machine["web"]["ports"] == ["127.0.0.1:8000:8000/tcp"]


# -- several: Redis, two web servers, two workers, one proxy ------------------------


@needs_compose
def test_the_cluster_runs_redis_two_web_servers_two_workers_and_a_proxy(cluster):
    assert sorted(web_services(cluster)) == ["web-1", "web-2"]
    assert sorted(worker_services(cluster)) == ["worker-1", "worker-2"]
    assert {"redis", "proxy", "setup"} <= set(cluster)
    assert cluster["redis"]["image"].startswith("redis:")
    assert cluster["redis"]["command"][:3] == ["redis-server", "--appendonly", "yes"]
    assert cluster["redis"]["volumes"][0].startswith("redis-data:/data")


@needs_compose
def test_the_cluster_publishes_one_port_through_the_proxy(cluster):
    published = {name: s["ports"] for name, s in cluster.items() if s.get("ports")}
    assert published == {"proxy": ["127.0.0.1:8000:8080/tcp"]}
    assert cluster["proxy"]["volumes"] == [f"{ROOT}/deploy/nginx.conf:/etc/nginx/nginx.conf:ro"]


@needs_compose
def test_cluster_web_servers_and_workers_share_redis_and_the_data_volume(cluster):
    sharing = {**web_services(cluster), **worker_services(cluster)}
    for name, service in sharing.items():
        assert service["environment"]["JOBS_REDIS_URL"] == "redis://redis:6379/0", name
        assert service["volumes"] == ["jobs-data:/data:rw"], name
        assert service["depends_on"]["redis"] == {"condition": "service_healthy"}, name
    for name, service in web_services(cluster).items():
        # Behind the proxy the client is the last X-Forwarded-For entry.
        assert service["environment"]["JOBS_NUM_PROXIES"] == "1", name
        # Migrated once, by the one-shot setup service, not by both at once.
        assert service["command"] == ["deploy/web.sh", "serve"], name
        assert service["depends_on"]["setup"] == {"condition": "service_completed_successfully"}
    assert cluster["setup"]["command"] == ["deploy/web.sh", "setup"]


def test_the_proxy_streams_events_unbuffered_and_names_the_client():
    conf = (ROOT / "deploy/nginx.conf").read_text()
    upstream = re.search(r"upstream web \{(.*?)\}", conf, re.S).group(1)
    assert re.findall(r"server (web-\d):8000 resolve", upstream) == ["web-1", "web-2"]
    events = re.search(r"location = /api/events \{(.*?)\}", conf, re.S).group(1)
    assert "proxy_buffering off;" in events
    timeout = re.search(r"proxy_read_timeout (\d+)m;", events)
    assert timeout and int(timeout.group(1)) >= 5  # a stream lasts five minutes
    assert "proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;" in conf
    assert "proxy_set_header X-Forwarded-Proto $scheme;" in conf


# -- both setups ----------------------------------------------------------------


@needs_compose
@pytest.mark.parametrize("file", [ONE_MACHINE, CLUSTER])
def test_every_service_has_a_health_check_and_a_restart_policy(file):
    services = compose_config(file)["services"]
    running = long_running(services)
    one_shot = set(services) - set(running)
    assert one_shot <= {"setup"}
    for name, service in running.items():
        assert service["restart"] == "unless-stopped", name
        test = service["healthcheck"]["test"]
        assert test[0] in ("CMD", "CMD-SHELL") and test[1:] != ["true"], name


@needs_compose
@pytest.mark.parametrize("file", [ONE_MACHINE, CLUSTER])
def test_a_worker_stops_only_after_its_longest_task(file):
    task_timeout = int(example_settings()["JOBS_TASK_TIMEOUT"])
    workers = worker_services(compose_config(file)["services"])
    assert workers
    for name, service in workers.items():
        assert service["stop_signal"] == "SIGTERM", name
        assert seconds(service["stop_grace_period"]) > task_timeout, name
        assert service["init"] is True, name  # the signal reaches the cluster's main process


@needs_compose
@pytest.mark.parametrize("file", [ONE_MACHINE, CLUSTER])
def test_web_servers_stop_on_sigterm_with_room_for_many_streams(file):
    webs = web_services(compose_config(file)["services"])
    assert webs
    for name, service in webs.items():
        assert service["stop_signal"] == "SIGTERM", name
        # Longer than the 10 s granian gives open streams (deploy/web.sh).
        assert seconds(service["stop_grace_period"]) > 10, name
        assert service["ulimits"]["nofile"] >= 65536, name
        assert service["healthcheck"]["test"] == [
            "CMD",
            "python",
            "deploy/healthcheck.py",
            "web",
        ]


@needs_compose
@pytest.mark.parametrize("file", [ONE_MACHINE, CLUSTER])
def test_every_setting_reaches_the_containers(file):
    settings_source = (ROOT / "jobsite/settings.py").read_text()
    names = set(re.findall(r'env[a-z]*\("([A-Z_]+)"', settings_source))
    names |= set(example_settings())
    expected = names - CONTAINER_OWN
    services = compose_config(file)["services"]
    for name, service in {**web_services(services), **worker_services(services)}.items():
        missing = expected - set(service["environment"])
        assert not missing, f"{name}: add {sorted(missing)} to x-settings in {ONE_MACHINE}"


# -- the image ------------------------------------------------------------------


def test_the_image_runs_as_a_user_that_owns_the_data_directory():
    dockerfile = (ROOT / "Dockerfile").read_text()
    final_stage = dockerfile.split("\nFROM ")[-1]
    users = re.findall(r"^USER (\S+)", final_stage, re.M)
    assert users, "the final stage sets no USER: it would run as root"
    uid, _, gid = users[-1].partition(":")
    assert uid.isdigit() and int(uid) != 0 and gid.isdigit() and int(gid) != 0
    assert f"--uid {uid}" in final_stage and f"--gid {gid}" in final_stage
    assert "chown jobs:jobs /data" in final_stage
    assert re.search(r"^HEALTHCHECK .*\n.*deploy/healthcheck.py", final_stage, re.M)
    assert not re.search(r"^(ENV|ARG) .*(SECRET|ACCESS_KEY|PASSWORD|TOKEN)", dockerfile, re.M)


def test_the_build_leaves_out_data_secrets_and_local_tools():
    ignored = set((ROOT / ".dockerignore").read_text().split())
    assert {"data", ".env", ".venv", ".git", "frontend/node_modules", "bench/scratch"} <= ignored
    assert "!.env.example" in ignored


def test_the_web_script_sets_up_or_serves():
    script = ROOT / "deploy/web.sh"
    assert os.access(script, os.X_OK)
    result = subprocess.run(["sh", str(script), "nonsense"], capture_output=True, text=True)
    assert result.returncode == 2 and "usage" in result.stderr


# -- the health checks the containers run -------------------------------------------


def test_the_web_is_alive_while_no_worker_runs(live_server, monkeypatch):
    port = live_server.url.rsplit(":", 1)[1]
    monkeypatch.setenv("PORT", port)
    monkeypatch.delenv("DJANGO_ALLOWED_HOSTS", raising=False)
    healthcheck = load_healthcheck()
    # /api/health itself says 503 (no worker): the web server still serves.
    assert healthcheck.check_web() is None


def test_the_web_is_not_alive_when_nothing_answers(monkeypatch):
    monkeypatch.setenv("PORT", "9")  # discard: nothing listens there
    assert "GET /api/health failed" in load_healthcheck().check_web()


def run_worker_check(data_dir: Path) -> subprocess.CompletedProcess:
    return run_python("deploy/healthcheck.py", "worker", env=environment(data_dir))


def test_the_worker_is_healthy_only_with_a_fresh_heartbeat(data_dir):
    from jobs import health

    result = run_worker_check(data_dir)
    assert result.returncode == 1 and "No worker heartbeat" in result.stdout
    health.write_heartbeat(workers=2)
    result = run_worker_check(data_dir)
    assert result.returncode == 0, result.stdout + result.stderr

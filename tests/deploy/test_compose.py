"""docker-compose.yml checked by compose-go (the Compose Specification loader) and by policy."""

from __future__ import annotations

import ipaddress
import json
import re
from typing import Any

import pytest
import yaml
from pydantic import TypeAdapter

from deploy.images.build import dockerfile_defaults
from tests.deploy.artifacts import (
    IMAGES,
    ROOT,
    SERVICES_WITH_DATABASE,
    SINGLE_PROCESS,
    Manifest,
    api_process,
    compose_project,
    conventions_env_vars,
    conventions_ports,
    image_deployable,
    is_app_image,
    is_convention_command,
)

pytestmark = pytest.mark.deploy

COMPOSE_FILE = ROOT / "docker-compose.yml"
ENV_EXAMPLE = ROOT / ".env.example"
OBSERVABILITY = ROOT / "deploy" / "observability"
INFRA = {"member-db", "board-db", "qna-db", "saga-db", "kafka", "redis"}
OBSERVABILITY_SERVICES = {"otel-collector", "jaeger", "prometheus", "grafana"}
# Demonstration tools under a profile of their own: clients of the gateway, not processes of
# the system (no CLI command of docs/CONVENTIONS.md, no port, no readiness).
TOOLS = {"loadgen"}
# One-shot helpers that are not a CLI process of the system (documented in the file).
HELPERS = {"member-keygen"}


def services(project: Manifest) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = project["services"]
    return found


def app_services(project: Manifest) -> dict[str, dict[str, Any]]:
    return {n: s for n, s in services(project).items() if is_app_image(s.get("image", ""))}


def argv(service: dict[str, Any]) -> list[str]:
    entrypoint = service.get("entrypoint") or [image_deployable(service["image"])]
    return [*entrypoint, *(service.get("command") or ["api"])]


def env_example() -> dict[str, str]:
    values = {}
    for line in ENV_EXAMPLE.read_text(encoding="utf-8").splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            values[key] = value
    return values


@pytest.fixture(scope="module")
def project() -> Manifest:
    return compose_project(".env.example", "*")


def test_the_compose_specification_accepts_the_file() -> None:
    """Without .env (a fresh clone), with the example, and with every profile."""
    plain = compose_project(None, "")
    assert not OBSERVABILITY_SERVICES & set(services(plain)), "observability is opt-in"
    assert not TOOLS & set(services(plain)), "the load generator is opt-in"
    full = compose_project(".env.example", "*")
    assert set(services(full)) >= OBSERVABILITY_SERVICES | TOOLS
    assert services(plain).keys() | OBSERVABILITY_SERVICES | TOOLS == services(full).keys()
    assert plain["name"] == "msa-board"


def test_defaults_equal_the_documented_example() -> None:
    """A fresh clone (no .env) and a copied .env.example give the same project."""
    plain = json.dumps(compose_project(None, "*")["services"], sort_keys=True)
    example = json.dumps(compose_project(".env.example", "*")["services"], sort_keys=True)
    assert plain == example


def test_env_example_documents_every_variable() -> None:
    text = COMPOSE_FILE.read_text(encoding="utf-8")
    referenced = set(re.findall(r"\$\{([A-Z][A-Z0-9_]*)", text))
    documented = env_example()
    assert referenced == set(documented), "every ${VAR} documented, every entry used"
    example_text = ENV_EXAMPLE.read_text(encoding="utf-8")
    missing = {var for var in conventions_env_vars() if var not in example_text}
    assert not missing, f".env.example does not mention {sorted(missing)}"


# The web front end's own settings in .env.example: the example states web.config.Settings'
# defaults, so a default changed in code must change here too (and in docker-compose.yml,
# which test_defaults_equal_the_documented_example ties to the example).
WEB_SETTINGS_IN_THE_EXAMPLE = (
    "SESSION_IDLE_SECONDS",
    "SESSION_MAX_AGE_SECONDS",
    "ANON_SESSION_SECONDS",
    "REFRESH_MARGIN_SECONDS",
    "WEB_REDIS_KEY_PREFIX",
    "GATEWAY_TIMEOUT_SECONDS",
    "SAGA_POLL_SECONDS",
    "DEFAULT_LOCALE",
)


def test_the_example_states_the_web_defaults(project: Manifest) -> None:
    from web.config import Settings

    example = env_example()
    web_env = services(project)["web"]["environment"]
    for name in WEB_SETTINGS_IN_THE_EXAMPLE:
        field = Settings.model_fields[name]
        assert field.annotation is not None, name
        value = TypeAdapter(field.annotation).validate_python(example[name])
        assert value == field.default, f".env.example {name}={example[name]}, code: {field.default}"
        assert web_env[name] == example[name], name


def test_no_real_secret_in_the_example() -> None:
    for key, value in env_example().items():
        if re.search(r"PASSWORD|SECRET|TOKEN|PRIVATE", key):
            assert value.endswith("-dev-password"), f"{key} must be a clearly-dev value"
    assert "PRIVATE KEY-----" not in COMPOSE_FILE.read_text(encoding="utf-8")


def test_infrastructure_has_healthchecks(project: Manifest) -> None:
    svc = services(project)
    for name in INFRA | {"prometheus", "grafana"}:
        check = svc[name].get("healthcheck", {})
        assert check.get("test"), name
        assert not check.get("disable"), name


def test_kafka_runs_in_kraft_mode_from_the_official_image(project: Manifest) -> None:
    kafka = services(project)["kafka"]
    assert re.fullmatch(r"apache/kafka:4\.\d+\.\d+", kafka["image"])
    env = kafka["environment"]
    assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert "KAFKA_ZOOKEEPER_CONNECT" not in env


def test_one_database_per_service_with_own_credentials(project: Manifest) -> None:
    svc = services(project)
    credentials, volumes = set(), set()
    for name in SERVICES_WITH_DATABASE:
        db = svc[f"{name}-db"]
        env = db["environment"]
        assert env["POSTGRES_USER"] == name
        assert env["POSTGRES_DB"] == name
        credentials.add(env["POSTGRES_PASSWORD"])
        volumes.add(db["volumes"][0]["source"])
        for user in (f"{name}-api", f"{name}-worker", f"{name}-migrate"):
            url = svc[user]["environment"]["DATABASE_URL"]
            assert url == (
                f"postgresql+asyncpg://{name}:{env['POSTGRES_PASSWORD']}@{name}-db:5432/{name}"
            )
    assert len(credentials) == len(volumes) == len(SERVICES_WITH_DATABASE)


def test_every_image_is_pinned(project: Manifest) -> None:
    for name, service in services(project).items():
        image = service["image"]
        repository, _, tag = image.rpartition(":")
        assert repository, f"{name}: {image} has no tag"
        assert "/" not in tag, f"{name}: {image} has no tag"
        assert tag != "latest", f"{name}: {image}"
        assert re.fullmatch(r"v?\d+\.\d+(\.\d+)?(-[\w.]+)?", tag), f"{name}: {image}"


def test_app_services_run_the_documented_commands(project: Manifest) -> None:
    for name, service in app_services(project).items():
        if name in HELPERS | TOOLS:
            continue
        command = argv(service)
        deployable = command[0] if command[0] == "chassis" else image_deployable(service["image"])
        assert is_convention_command(deployable, command), f"{name} runs {command}"
        if name.endswith(("-api", "-worker", "-migrate")):
            assert command == [deployable, name.rsplit("-", 1)[1]], name


def test_every_process_type_is_present(project: Manifest) -> None:
    svc = services(project)
    for name in SERVICES_WITH_DATABASE:
        for kind in ("api", "worker", "migrate"):
            assert f"{name}-{kind}" in svc
    assert argv(svc["kafka-topics"]) == ["chassis", "topics", "create"]
    for name in SINGLE_PROCESS:
        assert argv(svc[name]) == [name, "api"]


def test_processes_wait_for_migrations_and_healthy_infrastructure(project: Manifest) -> None:
    svc = services(project)
    for name in SERVICES_WITH_DATABASE:
        for kind in ("api", "worker"):
            deps = {d: c["condition"] for d, c in svc[f"{name}-{kind}"]["depends_on"].items()}
            assert deps[f"{name}-migrate"] == "service_completed_successfully"
            assert deps["kafka-topics"] == "service_completed_successfully"
            for infra in (f"{name}-db", "kafka", "redis"):
                assert deps[infra] == "service_healthy", f"{name}-{kind} -> {infra}"
            other_dbs = {f"{o}-db" for o in SERVICES_WITH_DATABASE if o != name}
            assert not other_dbs & set(deps)
        migrate = svc[f"{name}-migrate"]["depends_on"]
        assert migrate[f"{name}-db"]["condition"] == "service_healthy"
    assert svc["kafka-topics"]["depends_on"]["kafka"]["condition"] == "service_healthy"
    gateway = svc["gateway"]["depends_on"]
    for name in SERVICES_WITH_DATABASE:
        assert gateway[f"{name}-api"]["condition"] == "service_healthy"
    assert gateway["web"]["condition"] == "service_healthy"


def test_web_waits_for_redis_only(project: Manifest) -> None:
    """web has no database and no Kafka client, and its readiness never needs the gateway
    (which waits for web): Redis, for its sessions, is its one dependency."""
    web = services(project)["web"]["depends_on"]
    assert {d: c["condition"] for d, c in web.items()} == {"redis": "service_healthy"}


def test_the_gateway_and_web_address_each_other_by_service_name(project: Manifest) -> None:
    svc, ports = services(project), conventions_ports()
    assert svc["gateway"]["environment"]["WEB_URL"] == f"http://web:{ports['web'][0]}"
    assert svc["web"]["environment"]["GATEWAY_URL"] == f"http://gateway:{ports['gateway'][0]}"
    for name in SERVICES_WITH_DATABASE:
        upstream = f"http://{name}-api:{ports[name][0]}"
        assert svc["gateway"]["environment"][f"{name.upper()}_URL"] == upstream


def test_every_process_is_health_checked_on_its_own_readiness(project: Manifest) -> None:
    """compose's healthcheck calls /readyz on the port the process serves it on: an API's
    HTTP_PORT, a worker's WORKER_PORT (what `depends_on: service_healthy` waits for)."""
    for name, service in app_services(project).items():
        if service.get("restart") in (None, "no") or name in TOOLS:
            continue  # a one-shot job, or a tool that serves nothing
        env = service["environment"]
        port = env["WORKER_PORT"] if argv(service)[1] == "worker" else env["HTTP_PORT"]
        check = " ".join(service["healthcheck"]["test"])
        assert f"http://127.0.0.1:{port}/readyz" in check, f"{name}: {check}"


def test_the_load_generator_is_an_opt_in_client_of_the_gateway(project: Manifest) -> None:
    """`--profile loadgen` only, its own image, the gateway by service name once it is healthy,
    and nothing published (docs/loadgen.md)."""
    loadgen = services(project)["loadgen"]
    assert loadgen["profiles"] == ["loadgen"]
    assert image_deployable(loadgen["image"]) == "loadgen"
    assert loadgen["build"]["dockerfile"] == "Dockerfile"
    assert loadgen["build"]["args"]["DEPLOYABLE"] == "loadgen"
    gateway_port = conventions_ports()["gateway"][0]
    assert loadgen["environment"]["GATEWAY_URL"] == f"http://gateway:{gateway_port}"
    assert float(loadgen["environment"]["LOADGEN_RATE"]) > 0
    assert loadgen["depends_on"] == {"gateway": {"condition": "service_healthy", "required": True}}
    assert not loadgen.get("ports")


def test_one_shot_jobs_do_not_restart(project: Manifest) -> None:
    for name, service in services(project).items():
        one_shot = name.endswith("-migrate") or name in HELPERS | {"kafka-topics"}
        assert (service.get("restart") in (None, "no")) is one_shot, name


def test_only_the_gateway_is_published(project: Manifest) -> None:
    for name, service in app_services(project).items():
        ports = service.get("ports", [])
        if name == "gateway":
            assert [(p["target"], p["published"]) for p in ports] == [(8000, "8000")]
        else:
            assert not ports, f"{name} must not be published"
    for name in INFRA:
        assert not services(project)[name].get("ports"), f"{name} must not be published"


def test_trusted_proxy_hops(project: Manifest) -> None:
    """Clients reach the published gateway directly: it believes no one's X-Forwarded-For.
    The APIs and web, which only containers of the project's network can reach, believe that
    network (web gets a browser's address and scheme from the gateway)."""
    for name, service in app_services(project).items():
        value = service.get("environment", {}).get("FORWARDED_ALLOW_IPS")
        if name == "gateway":
            assert value == "", "the gateway must trust no proxy by default"
        elif name.endswith("-api") or name == "web":
            networks = [ipaddress.ip_network(item) for item in value.split(",")]
            assert networks, name
            assert all(n.is_private for n in networks), f"{name}: {value}"


def test_app_containers_are_hardened(project: Manifest) -> None:
    for name, service in app_services(project).items():
        assert service.get("read_only") is True, name
        assert service.get("cap_drop") == ["ALL"], name
        assert "no-new-privileges:true" in service.get("security_opt", []), name
        assert any(t.startswith("/tmp") for t in service.get("tmpfs", [])), name
        assert "user" not in service, f"{name}: the image's non-root user applies"


def test_ports_follow_the_conventions(project: Manifest) -> None:
    svc = services(project)
    for deployable, (http, worker) in conventions_ports().items():
        names = (
            [deployable]
            if deployable in SINGLE_PROCESS
            else [f"{deployable}-api", f"{deployable}-worker"]
        )
        for name in names:
            env = svc[name]["environment"]
            assert env["HTTP_PORT"] == str(http)
            assert env["HTTP_HOST"] == "0.0.0.0"
            if worker is not None:
                assert env["WORKER_PORT"] == str(worker)


# ------------------------------------------------------------------ observability profile


def test_prometheus_scrapes_every_process() -> None:
    config = yaml.safe_load((OBSERVABILITY / "prometheus.yml").read_text(encoding="utf-8"))
    targets = {
        target
        for job in config["scrape_configs"]
        for static in job["static_configs"]
        for target in static["targets"]
    }
    expected = set()
    for deployable, (http, worker) in conventions_ports().items():
        expected.add(f"{api_process(deployable)}:{http}")
        if worker is not None:
            expected.add(f"{deployable}-worker:{worker}")
    assert targets == expected


ALLOWED_METRICS = {
    "http_requests_total",
    "http_request_duration_seconds_bucket",
    "http_requests_in_flight",
    "kafka_consumer_lag",
    "kafka_dead_letters_total",
    "outbox_pending",
    "outbox_published_total",
    "saga_started_total",
    "saga_completed_total",
    "saga_compensated_total",
    "saga_failed_total",
    "saga_duration_seconds_bucket",
    "saga_in_flight",
    "gateway_upstream_requests_total",
    "gateway_breaker_state",
}
PROMQL_WORDS = {"sum", "rate", "increase", "histogram_quantile", "clamp_min", "max", "or", "vector"}


def dashboard_metrics(dashboard: dict[str, Any]) -> set[str]:
    used = set()
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            # Drop label matchers, ranges, strings, grouping clauses and numbers.
            expr = re.sub(
                r"\{[^}]*\}|\[[^\]]*\]|\"[^\"]*\"|\b(by|without|on|ignoring)\s*\([^)]*\)"
                r"|\b\d+(\.\d+)?(e-?\d+)?\b",
                "",
                target["expr"],
            )
            used |= {w for w in re.findall(r"[a-z_][a-z0-9_]*", expr) if w not in PROMQL_WORDS}
    return used


def test_dashboards_are_provisioned_for_every_service_and_for_messaging() -> None:
    folder = OBSERVABILITY / "grafana" / "dashboards"
    dashboards = {p.stem: json.loads(p.read_text(encoding="utf-8")) for p in folder.glob("*.json")}
    for deployable in conventions_ports():
        http = dashboards[f"http-{deployable}"]
        used = dashboard_metrics(http)
        assert {"http_requests_total", "http_request_duration_seconds_bucket"} <= used
        assert f'service="{deployable}"' in json.dumps(http).replace('\\"', '"')
    assert {"gateway_upstream_requests_total", "gateway_breaker_state"} <= dashboard_metrics(
        dashboards["http-gateway"]
    )
    messaging = dashboard_metrics(dashboards["messaging-and-sagas"])
    assert {
        "kafka_consumer_lag",
        "outbox_pending",
        "outbox_published_total",
        "saga_started_total",
        "saga_completed_total",
        "saga_compensated_total",
        "saga_failed_total",
        "saga_duration_seconds_bucket",
        "saga_in_flight",
    } <= messaging
    for name, dashboard in dashboards.items():
        assert dashboard_metrics(dashboard) <= ALLOWED_METRICS, name
        assert len({d["uid"] for d in dashboards.values()}) == len(dashboards)


def test_grafana_provisioning_points_at_the_mounted_folders(project: Manifest) -> None:
    grafana = services(project)["grafana"]
    mounts = {v["target"]: v["source"] for v in grafana["volumes"]}
    provider = yaml.safe_load(
        (OBSERVABILITY / "grafana/provisioning/dashboards/dashboards.yaml").read_text(
            encoding="utf-8"
        )
    )
    path = provider["providers"][0]["options"]["path"]
    assert mounts[path].endswith("deploy/observability/grafana/dashboards")
    assert mounts["/etc/grafana/provisioning"].endswith("deploy/observability/grafana/provisioning")


def test_prometheus_loads_the_alert_rules_mounted_beside_its_config(project: Manifest) -> None:
    config = yaml.safe_load((OBSERVABILITY / "prometheus.yml").read_text(encoding="utf-8"))
    mounts = {v["target"]: v["source"] for v in services(project)["prometheus"]["volumes"]}
    assert config["rule_files"] == ["/etc/prometheus/alerts.yml"]
    assert mounts["/etc/prometheus/alerts.yml"] == str(OBSERVABILITY / "alerts.yml")


def test_every_build_takes_the_dockerfiles_bases_unless_the_environment_names_others(
    project: Manifest,
) -> None:
    """``build.args`` carry ``PYTHON_IMAGE`` and ``UV_IMAGE`` from the environment, and their
    defaults are the Dockerfile's own, so ``docker compose up --build`` builds what ``docker
    build`` builds, and a machine without a registry can point both at the stand-ins
    ``make images`` makes (docs/deploy.md)."""
    bases = {key: dockerfile_defaults()[key] for key in ("PYTHON_IMAGE", "UV_IMAGE")}
    built = {name: s for name, s in services(project).items() if "build" in s}
    assert {image_deployable(s["image"]) for s in built.values()} >= set(IMAGES)
    for name, service in built.items():
        args = service["build"]["args"]
        assert {key: args.get(key) for key in bases} == bases, name
        assert args["DEPLOYABLE"] == image_deployable(service["image"]), name
    assert bases == {key: env_example()[key] for key in bases}

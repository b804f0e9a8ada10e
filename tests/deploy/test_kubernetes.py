"""Policy tests over the rendered Kubernetes manifests: what every overlay must guarantee."""

from __future__ import annotations

import base64
import ipaddress
import re
import subprocess
import sys

import pytest

from tests.deploy.artifacts import (
    IMAGE_REPOSITORY,
    K8S,
    NAMESPACE,
    OVERLAYS,
    ROOT,
    SERVICES_WITH_DATABASE,
    SINGLE_PROCESS,
    Endpoint,
    Manifest,
    apply_tool,
    by_name,
    configmap_env,
    connection_allowed,
    container_argv,
    containers,
    conventions_ports,
    effective_replicas,
    endpoint,
    image_deployable,
    ingress_allowed,
    is_app_image,
    is_convention_command,
    of_kind,
    pod_labels,
    pod_spec,
    rendered,
    secret_values,
    selector_matches,
    workloads,
)

pytestmark = pytest.mark.deploy

APP_DEPLOYMENTS = {
    *(f"{svc}-{kind}" for svc in SERVICES_WITH_DATABASE for kind in ("api", "worker")),
    *SINGLE_PROCESS,
}
AUTOSCALED = {f"{svc}-api" for svc in SERVICES_WITH_DATABASE} | set(SINGLE_PROCESS)
JOBS = {f"{svc}-migrate" for svc in SERVICES_WITH_DATABASE} | {"kafka-topics"}
INFRA = {"member-db", "board-db", "qna-db", "saga-db", "kafka", "redis"}
# Third-party images that cannot run on a read-only root filesystem, and why.
WRITABLE_ROOT = {"kafka": "the apache/kafka start script writes its config into the image"}


@pytest.fixture(scope="module", params=OVERLAYS)
def docs(request: pytest.FixtureRequest) -> tuple[Manifest, ...]:
    overlay: str = request.param
    return rendered(overlay)


def test_every_overlay_renders_every_workload() -> None:
    local = {w["metadata"]["name"] for w in workloads(rendered("local"))}
    production = {w["metadata"]["name"] for w in workloads(rendered("production"))}
    assert local == APP_DEPLOYMENTS | JOBS | INFRA
    assert production == APP_DEPLOYMENTS | JOBS, "production brings no infrastructure of its own"


def test_namespace_enforces_restricted_pod_security(docs: tuple[Manifest, ...]) -> None:
    (namespace,) = of_kind(docs, "Namespace")
    labels = namespace["metadata"]["labels"]
    assert namespace["metadata"]["name"] == NAMESPACE
    for mode in ("enforce", "audit", "warn"):
        assert labels[f"pod-security.kubernetes.io/{mode}"] == "restricted"
    assert all(
        doc["metadata"].get("namespace") == NAMESPACE for doc in docs if doc["kind"] != "Namespace"
    )


# ------------------------------------------------------------------ pods


def test_every_container_is_locked_down(docs: tuple[Manifest, ...]) -> None:
    for workload in workloads(docs):
        pod = pod_spec(workload)
        pod_ctx = pod.get("securityContext", {})
        for container in containers(workload):
            where = f"{workload['metadata']['name']}/{container['name']}"
            ctx = {**pod_ctx, **container.get("securityContext", {})}
            assert ctx.get("runAsNonRoot") is True, where
            assert ctx.get("runAsUser", 1) != 0, where
            read_only = workload["metadata"]["name"] not in WRITABLE_ROOT
            assert ctx.get("readOnlyRootFilesystem") is read_only, where
            assert ctx.get("allowPrivilegeEscalation") is False, where
            assert "ALL" in ctx.get("capabilities", {}).get("drop", []), where
            assert ctx.get("capabilities", {}).get("add") in (None, []), where
            assert ctx.get("seccompProfile", {}).get("type") == "RuntimeDefault", where
        assert not pod.get("hostNetwork")
        assert not pod.get("hostPID")
        assert not pod.get("hostIPC")


def test_app_pods_run_as_the_image_user(docs: tuple[Manifest, ...]) -> None:
    for workload in workloads(docs):
        if all(is_app_image(c["image"]) for c in containers(workload)):
            assert pod_spec(workload)["securityContext"]["runAsUser"] == 10001


def test_every_workload_has_its_own_service_account_without_token(
    docs: tuple[Manifest, ...],
) -> None:
    accounts = by_name(docs, "ServiceAccount")
    used = []
    for workload in workloads(docs):
        name = pod_spec(workload).get("serviceAccountName")
        assert name == workload["metadata"]["name"], "one ServiceAccount per workload"
        assert accounts[name].get("automountServiceAccountToken") is False
        assert pod_spec(workload).get("automountServiceAccountToken") is False
        used.append(name)
    assert len(used) == len(set(used))
    assert not of_kind(docs, "Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding")


def test_every_container_has_requests_and_limits(docs: tuple[Manifest, ...]) -> None:
    for workload in workloads(docs):
        for container in containers(workload):
            resources = container.get("resources", {})
            for section in ("requests", "limits"):
                for resource in ("cpu", "memory"):
                    assert resource in resources.get(section, {}), (
                        f"{workload['metadata']['name']}: {section}.{resource}"
                    )


def test_long_running_containers_have_the_three_probes(docs: tuple[Manifest, ...]) -> None:
    for workload in of_kind(docs, "Deployment", "StatefulSet"):
        for container in containers(workload):
            for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
                assert probe in container, f"{workload['metadata']['name']}: {probe}"


def test_app_probes_use_healthz_and_readyz_on_the_process_port(
    docs: tuple[Manifest, ...],
) -> None:
    for deployment in of_kind(docs, "Deployment"):
        (container,) = containers(deployment)
        env = configmap_env(docs, container)
        is_worker = container.get("args") == ["worker"]
        port = int(env["WORKER_PORT"] if is_worker else env["HTTP_PORT"])
        named = {p["name"]: p["containerPort"] for p in container["ports"]}
        get = {
            probe: container[probe]["httpGet"]
            for probe in ("startupProbe", "readinessProbe", "livenessProbe")
        }
        assert get["readinessProbe"]["path"] == "/readyz"
        assert get["livenessProbe"]["path"] == "/healthz"
        assert get["startupProbe"]["path"] in ("/healthz", "/readyz")
        for http_get in get.values():
            assert named[http_get["port"]] == port, deployment["metadata"]["name"]


def test_ports_match_the_conventions(docs: tuple[Manifest, ...]) -> None:
    ports = conventions_ports()
    for deployment in of_kind(docs, "Deployment"):
        (container,) = containers(deployment)
        env = configmap_env(docs, container)
        deployable = image_deployable(container["image"])
        http, worker = ports[deployable]
        assert int(env["HTTP_PORT"]) == http
        if worker is not None:
            assert int(env["WORKER_PORT"]) == worker


def test_shutdown_fits_in_the_grace_period(docs: tuple[Manifest, ...]) -> None:
    """preStop pause + readiness drain + request/consumer drain must end before SIGKILL."""
    for deployment in of_kind(docs, "Deployment"):
        (container,) = containers(deployment)
        pre_stop = container["lifecycle"]["preStop"]
        if "sleep" in pre_stop:
            pause = int(pre_stop["sleep"]["seconds"])
        else:
            pause = int(pre_stop["exec"]["command"][-1])
        env = configmap_env(docs, container)
        needed = (
            pause + float(env["SHUTDOWN_DRAIN_SECONDS"]) + float(env["SHUTDOWN_TIMEOUT_SECONDS"])
        )
        grace = pod_spec(deployment)["terminationGracePeriodSeconds"]
        assert grace >= needed + 10, f"{deployment['metadata']['name']}: {grace}s < {needed}s + 10s"


def test_the_root_filesystem_is_read_only_but_tmp_is_writable(docs: tuple[Manifest, ...]) -> None:
    for workload in workloads(docs):
        volumes = {v["name"]: v for v in pod_spec(workload).get("volumes", [])}
        for container in containers(workload):
            if not is_app_image(container["image"]):
                continue
            mounts = {m["mountPath"]: m["name"] for m in container.get("volumeMounts", [])}
            assert "emptyDir" in volumes[mounts["/tmp"]], workload["metadata"]["name"]


# ------------------------------------------------------------------ commands and images


def test_containers_run_the_documented_cli_commands(docs: tuple[Manifest, ...]) -> None:
    for workload in workloads(docs):
        for container in containers(workload):
            if is_app_image(container["image"]):
                argv = container_argv(container)
                deployable = (
                    argv[0] if argv[0] == "chassis" else image_deployable(container["image"])
                )
                assert is_convention_command(deployable, argv), (
                    f"{workload['metadata']['name']} runs {argv}, not a command of "
                    "docs/CONVENTIONS.md"
                )


def test_each_process_type_has_its_workload(docs: tuple[Manifest, ...]) -> None:
    argv = {
        w["metadata"]["name"]: container_argv(containers(w)[0])
        for w in workloads(docs)
        if is_app_image(containers(w)[0]["image"])
    }
    for svc in SERVICES_WITH_DATABASE:
        assert argv[f"{svc}-api"] == [svc, "api"]
        assert argv[f"{svc}-worker"] == [svc, "worker"]
        assert argv[f"{svc}-migrate"] == [svc, "migrate"]
    for name in SINGLE_PROCESS:
        assert argv[name] == [name, "api"]
    assert argv["kafka-topics"] == ["chassis", "topics", "create"]


def test_every_image_is_pinned(docs: tuple[Manifest, ...]) -> None:
    for workload in workloads(docs):
        for container in containers(workload):
            image = container["image"]
            name, _, tag = image.rpartition(":")
            assert name, f"{image} has no tag"
            assert "/" not in tag, f"{image} has no tag"
            assert tag != "latest", image
            # An exact release: 1.2.3 (or PostgreSQL's 17.7), optionally with a variant suffix.
            assert re.fullmatch(r"v?\d+\.\d+(\.\d+)?(-[\w.]+)?", tag), f"{image}: exact version"
            if is_app_image(image):
                assert re.fullmatch(rf"{IMAGE_REPOSITORY}/[a-z]+:\d+\.\d+\.\d+", image)
            assert container.get("imagePullPolicy") in (None, "IfNotPresent")


# ------------------------------------------------------------------ availability


def test_replica_counts_per_overlay() -> None:
    """local runs one replica of everything; production at least two of every process."""
    local, production = rendered("local"), rendered("production")
    for deployment in of_kind(local, "Deployment"):
        assert effective_replicas(local, deployment) == 1, deployment["metadata"]["name"]
    for deployment in of_kind(production, "Deployment"):
        assert effective_replicas(production, deployment) >= 2, deployment["metadata"]["name"]


def test_apis_gateway_and_web_are_autoscaled(docs: tuple[Manifest, ...]) -> None:
    targets = {
        h["spec"]["scaleTargetRef"]["name"]: h for h in of_kind(docs, "HorizontalPodAutoscaler")
    }
    assert set(targets) == AUTOSCALED
    deployments = by_name(docs, "Deployment")
    for name, hpa in targets.items():
        assert "replicas" not in deployments[name]["spec"], f"{name}: the HPA owns replicas"
        assert hpa["spec"]["maxReplicas"] > hpa["spec"]["minReplicas"] >= 1
        assert hpa["spec"]["metrics"], name


def test_every_multi_replica_workload_has_a_disruption_budget(docs: tuple[Manifest, ...]) -> None:
    budgets = of_kind(docs, "PodDisruptionBudget")
    for workload in of_kind(docs, "Deployment", "StatefulSet"):
        matching = [
            b for b in budgets if selector_matches(b["spec"]["selector"], pod_labels(workload))
        ]
        if effective_replicas(docs, workload) >= 2:
            assert len(matching) == 1, workload["metadata"]["name"]
        for budget in matching:
            # maxUnavailable keeps node drains possible even at one replica.
            assert budget["spec"].get("maxUnavailable") == 1


def test_production_topics_are_replicated_three_times() -> None:
    docs = rendered("production")
    (topics,) = (w for w in workloads(docs) if w["metadata"]["name"] == "kafka-topics")
    env = configmap_env(docs, containers(topics)[0])
    assert env["KAFKA_REPLICATION_FACTOR"] == "3"
    local = rendered("local")
    (local_topics,) = (w for w in workloads(local) if w["metadata"]["name"] == "kafka-topics")
    assert configmap_env(local, containers(local_topics)[0])["KAFKA_REPLICATION_FACTOR"] == "1"


def test_production_kafka_clients_log_in_over_tls_with_the_kafka_secret() -> None:
    docs = rendered("production")
    secrets = by_name(docs, "Secret")
    (kafka_secret,) = (name for name in secrets if name.startswith("kafka-"))
    assert set(secret_values(secrets[kafka_secret])) == {
        "KAFKA_SASL_USERNAME",
        "KAFKA_SASL_PASSWORD",
    }
    for workload in workloads(docs):
        name = workload["metadata"]["name"]
        if not (name.endswith(("-api", "-worker")) or name == "kafka-topics"):
            continue
        for container in containers(workload):
            env = configmap_env(docs, container)
            assert (env["KAFKA_SECURITY_PROTOCOL"], env["KAFKA_SASL_MECHANISM"]) == (
                "SASL_SSL",
                "SCRAM-SHA-512",
            ), name
            refs = [s["secretRef"]["name"] for s in container["envFrom"] if "secretRef" in s]
            assert refs == [kafka_secret], name
    local = rendered("local")
    assert not [name for name in by_name(local, "Secret") if name.startswith("kafka-")]
    (local_worker,) = (w for w in workloads(local) if w["metadata"]["name"] == "board-worker")
    assert "KAFKA_SECURITY_PROTOCOL" not in configmap_env(local, containers(local_worker)[0])


def test_production_reaches_infrastructure_through_external_names() -> None:
    services = by_name(rendered("production"), "Service")
    for name in (*(f"{svc}-db" for svc in SERVICES_WITH_DATABASE), "kafka", "redis"):
        assert services[name]["spec"]["type"] == "ExternalName", name


def test_local_runs_infrastructure_in_stateful_sets_with_volumes() -> None:
    statefulsets = by_name(rendered("local"), "StatefulSet")
    assert set(statefulsets) == INFRA
    for name, sts in statefulsets.items():
        claims = sts["spec"].get("volumeClaimTemplates", [])
        assert claims, f"{name} keeps its data in a PersistentVolumeClaim"
        mounted = {m["name"] for c in containers(sts) for m in c.get("volumeMounts", [])}
        assert {c["metadata"]["name"] for c in claims} <= mounted


def test_the_gateway_is_the_only_ingress_backend(docs: tuple[Manifest, ...]) -> None:
    backends = {
        path["backend"]["service"]["name"]
        for ingress in of_kind(docs, "Ingress")
        for rule in ingress["spec"]["rules"]
        for path in rule["http"]["paths"]
    }
    assert backends == {"gateway"}
    assert all(
        s["spec"].get("type", "ClusterIP") in ("ClusterIP", "ExternalName")
        for s in of_kind(docs, "Service")
    )


# ------------------------------------------------------------------ configuration and secrets


def test_every_reference_resolves(docs: tuple[Manifest, ...]) -> None:
    """Generated names carry a hash; every ConfigMap/Secret reference must point at one."""
    maps, secrets = by_name(docs, "ConfigMap"), by_name(docs, "Secret")
    for workload in workloads(docs):
        for container in containers(workload):
            for source in container.get("envFrom", []):
                if "configMapRef" in source:
                    assert source["configMapRef"]["name"] in maps
                else:  # an optional Secret may be missing (kafka outside production)
                    ref = source["secretRef"]
                    assert ref["name"] in secrets or ref.get("optional") is True, ref
            for var in container.get("env", []):
                ref = var.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    assert ref["key"] in secret_values(secrets[ref["name"]]), ref
        for volume in pod_spec(workload).get("volumes", []):
            if "secret" in volume:
                assert volume["secret"]["secretName"] in secrets


def test_database_urls_point_each_service_at_its_own_database(docs: tuple[Manifest, ...]) -> None:
    for workload in workloads(docs):
        for container in containers(workload):
            env = configmap_env(docs, container)
            if "DATABASE_URL" not in env:
                continue
            svc = image_deployable(container["image"])
            assert env["DB_HOST"] == f"{svc}-db"
            assert env["DB_NAME"] == svc
            refs = {
                v["valueFrom"]["secretKeyRef"]["name"].rsplit("-", 1)[0]
                for v in container["env"]
                if "secretKeyRef" in v.get("valueFrom", {}) and v["name"].startswith("DB_")
            }
            assert refs == {f"{svc}-db"}


def test_no_secret_holds_a_real_value(docs: tuple[Manifest, ...]) -> None:
    """Rendered from the committed examples, every Secret value must be a placeholder."""
    placeholder = re.compile(r"^(CHANGE-ME|[a-z]+-local-dev-only|member|board|qna|saga)$")
    for secret in of_kind(docs, "Secret"):
        for key, value in secret_values(secret).items():
            where = f"{secret['metadata']['name']}/{key}"
            assert "PRIVATE KEY-----" not in value, f"{where} holds a key"
            if key.endswith(".pem"):
                assert value.startswith("# Placeholder, not a key"), where
            else:
                assert placeholder.match(value), f"{where} = {value!r} looks real"


def test_secrets_only_come_from_generators() -> None:
    for path in K8S.rglob("*.yaml"):
        text = path.read_text(encoding="utf-8")
        assert not re.search(r"^kind:\s*Secret\b", text, re.MULTILINE), f"{path} commits a Secret"


def test_real_secret_files_are_git_ignored() -> None:
    for overlay in OVERLAYS:
        folder = K8S / "overlays" / overlay / "secrets"
        examples = sorted(folder.glob("*.example"))
        assert examples
        for example in examples:
            real = example.with_name(example.name.removesuffix(".example"))
            ignored = subprocess.run(
                ["git", "check-ignore", "-q", str(real.relative_to(ROOT))], cwd=ROOT, check=False
            )
            assert ignored.returncode == 0, f"{real} would be committed"
            kept = subprocess.run(
                ["git", "check-ignore", "-q", str(example.relative_to(ROOT))], cwd=ROOT, check=False
            )
            assert kept.returncode == 1, f"{example} must be committed"


# ------------------------------------------------------------------ network policies


def test_default_deny_and_one_allow_list_per_workload(docs: tuple[Manifest, ...]) -> None:
    policies = by_name(docs, "NetworkPolicy")
    deny = policies["default-deny-all"]["spec"]
    assert deny["podSelector"] == {}
    assert set(deny["policyTypes"]) == {"Ingress", "Egress"}
    assert "ingress" not in deny
    assert "egress" not in deny
    for workload in workloads(docs):
        name = workload["metadata"]["name"]
        assert name in policies, f"{name} has no allow-list"
        assert selector_matches(policies[name]["spec"]["podSelector"], pod_labels(workload))


def _empty_lists(node: object, path: str = "") -> list[str]:
    if isinstance(node, dict):
        return [hit for key, value in node.items() for hit in _empty_lists(value, f"{path}.{key}")]
    if isinstance(node, list):
        if not node:
            return [path]
        return [hit for i, value in enumerate(node) for hit in _empty_lists(value, f"{path}[{i}]")]
    return []


def test_no_manifest_carries_an_empty_list_the_server_drops(docs: tuple[Manifest, ...]) -> None:
    """The server stores an empty list as no field at all (issue 18, defect 2).

    Applied again, ``egress: []`` differs from the live object, so every apply bumps its
    generation and ``kubectl diff --server-side`` never comes out empty: a GitOps controller
    would show it out of sync forever. tests/k8s_apiserver shows it on a real server.
    """
    found = [
        f"{doc['kind']}/{doc['metadata']['name']}{path}"
        for doc in docs
        for path in _empty_lists(doc)
    ]
    assert not found, f"empty lists the API server would drop: {found}"


def test_every_policy_states_its_policy_types(docs: tuple[Manifest, ...]) -> None:
    """Deny-all in a direction is "that type listed, no rule of it", which needs policyTypes.

    Without ``policyTypes`` the server infers it from the rules present, and a policy with
    no egress rule would then not restrict egress at all. Listed, a direction with no rule
    admits nothing, which is what the migrate and topics Jobs' ingress and the databases'
    egress rely on.
    """
    for policy in of_kind(docs, "NetworkPolicy"):
        spec, name = policy["spec"], policy["metadata"]["name"]
        assert spec.get("policyTypes"), f"{name} leaves policyTypes to the server"
        for direction in ("Ingress", "Egress"):
            key = direction.lower()
            if key in spec:
                assert direction in spec["policyTypes"], f"{name}: {key} rules ignored"


def test_the_rollout_replaces_jobs_instead_of_updating_them(docs: tuple[Manifest, ...]) -> None:
    """A Job's pod template is immutable and changes with every release and config change.

    So each Job carries the annotation Flux and deploy/k8s/apply.py honour: delete and
    re-create when the server refuses the update (issue 18, defect 1; docs/deploy.md).
    """
    for job in of_kind(docs, "Job"):
        annotations = job["metadata"].get("annotations", {})
        assert annotations.get("kustomize.toolkit.fluxcd.io/force") == "enabled", job["metadata"][
            "name"
        ]


# A quantity as the server writes it back: an integer with no suffix, or with a suffix the
# integer cannot be raised out of (the server stores "1000m" as "1" and "1024Mi" as "1Gi").
QUANTITY = re.compile(r"^([1-9][0-9]*)(m|Ki|Mi|Gi|Ti)?$|^0$")
RAISES = {"m": 1000, "Ki": 1024, "Mi": 1024, "Gi": 1024}


def _quantity_problem(value: object) -> str | None:
    if not isinstance(value, str):
        return f"{value!r} is not a string (the server stores the quantity as one)"
    match = QUANTITY.match(value)
    if not match:
        return f"{value!r} is not in the form the server stores (an integer, m, Ki, Mi, Gi, Ti)"
    number, suffix = match.groups()
    if suffix in RAISES and int(number) % RAISES[suffix] == 0:
        return f"{value!r}: the server stores it with the next larger unit"
    return None


def _rewritten_fields(doc: Manifest) -> list[str]:
    """Fields of ``doc`` the API server would store differently from how they are written."""
    found = []
    spec = doc.get("spec", {})
    template = spec.get("template", {}).get("spec", {})
    for container in template.get("initContainers", []) + template.get("containers", []):
        where = f"{doc['kind']}/{doc['metadata']['name']} container {container['name']}"
        for env in container.get("env", []):
            field_ref = env.get("valueFrom", {}).get("fieldRef")
            if field_ref is not None and field_ref.get("apiVersion") != "v1":
                found.append(f"{where} env {env['name']}: fieldRef without apiVersion: v1")
        for bound in ("requests", "limits"):
            for name, value in container.get("resources", {}).get(bound, {}).items():
                if problem := _quantity_problem(value):
                    found.append(f"{where} {bound}.{name}: {problem}")
    for volume in template.get("volumes", []):
        size = volume.get("emptyDir", {}).get("sizeLimit")
        if size is not None and (problem := _quantity_problem(size)):
            found.append(f"{doc['metadata']['name']} volume {volume['name']}: {problem}")
    for claim in spec.get("volumeClaimTemplates", []):
        where = f"{doc['metadata']['name']} volumeClaimTemplate {claim['metadata']['name']}"
        for key, value in (("apiVersion", "v1"), ("kind", "PersistentVolumeClaim")):
            if claim.get(key) != value:
                found.append(f"{where}: no {key}: {value}")
        if "volumeMode" not in claim.get("spec", {}):
            found.append(f"{where}: no spec.volumeMode")
        if claim.get("status") != {"phase": "Pending"}:
            found.append(f"{where}: no status: {{phase: Pending}}")
        for name, value in claim["spec"].get("resources", {}).get("requests", {}).items():
            if problem := _quantity_problem(value):
                found.append(f"{where} requests.{name}: {problem}")
    return found


def test_no_manifest_carries_a_field_the_server_rewrites(docs: tuple[Manifest, ...]) -> None:
    """Each field is written as the API server stores it (issue 18, finding 1).

    Where the manifest and the stored object differ, the field manager that applied it does
    not notice (it may change its own fields), but every other one does: a second manager
    (kubectl's default, a GitOps controller) conflicts on the field, and a GitOps diff never
    settles. The kinds of rewrite seen on a real server: ``fieldRef`` gets ``apiVersion:
    v1`` (and is atomic, so the whole field differs); a quantity is stored as a string in
    canonical form (``cpu: 1`` becomes "1"); a StatefulSet's ``volumeClaimTemplates`` (an
    atomic list) get ``apiVersion``, ``kind``, ``spec.volumeMode`` and ``status``.
    tests/k8s_apiserver checks the whole objects on a real server.
    """
    found = [problem for doc in docs for problem in _rewritten_fields(doc)]
    assert not found, "fields the API server would rewrite:\n" + "\n".join(found)


def test_the_rollout_writes_secret_data_as_the_server_stores_it(
    docs: tuple[Manifest, ...],
) -> None:
    """kustomize wraps long base64 values; apply.py sends them on one line, same bytes."""
    secrets = of_kind(docs, "Secret")
    wrapped = [s["metadata"]["name"] for s in secrets if any("\n" in v for v in s["data"].values())]
    assert wrapped, "no wrapped Secret value rendered: the check below would check nothing"
    stored = {s["metadata"]["name"]: s for s in apply_tool().as_stored(list(docs))}
    for secret in secrets:
        name = secret["metadata"]["name"]
        for key, value in secret["data"].items():
            one_line = stored[name]["data"][key]
            assert not any(c.isspace() for c in one_line), f"{name}.{key} still wrapped"
            assert base64.b64decode(one_line) == base64.b64decode(value), f"{name}.{key}"
    others = [d for d in docs if d["kind"] != "Secret"]
    assert apply_tool().as_stored(others) == others, "only Secrets change"


def test_no_job_deletes_itself_after_it_finished(docs: tuple[Manifest, ...]) -> None:
    """No ``ttlSecondsAfterFinished`` (issue 18, finding 5).

    A GitOps controller re-creates a Job the TTL controller deleted at its next sync, which
    would rerun the migrations and ``topics create`` every hour. The finished Job stays
    until a rollout changes it (apply.py and Flux replace it then).
    """
    with_ttl = [
        job["metadata"]["name"]
        for job in of_kind(docs, "Job")
        if "ttlSecondsAfterFinished" in job["spec"]
    ]
    assert not with_ttl, f"Jobs a GitOps controller would rerun after their TTL: {with_ttl}"


@pytest.mark.parametrize(
    ("stdin", "says"),
    [
        ("kind: Deployment\nmetadata: {name: [\n", "standard input is not valid YAML"),
        ("- just\n- a list\n", "not a named Kubernetes object"),
        ("", "holds no objects"),
    ],
)
def test_the_rollout_refuses_bad_input_with_a_message(stdin: str, says: str) -> None:
    """Input errors are exit 2 with one clear line, never a traceback, and reach no cluster."""
    done = subprocess.run(
        [sys.executable, str(K8S / "apply.py"), "-f", "-", "--kubectl", "/nonexistent/kubectl"],
        input=stdin,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    assert says in done.stderr
    assert "Traceback" not in done.stderr, done.stderr


def test_only_the_gateway_accepts_traffic_from_the_ingress_controller(
    docs: tuple[Manifest, ...],
) -> None:
    controller = Endpoint({"app.kubernetes.io/name": "ingress-nginx"}, namespace="ingress-nginx")
    elsewhere = Endpoint({"app": "intruder"}, namespace="default")
    for workload in workloads(docs):
        name = workload["metadata"]["name"]
        dst = Endpoint(pod_labels(workload))
        for container in containers(workload):
            for port in (p["containerPort"] for p in container.get("ports", [])):
                assert connection_allowed(docs, controller, dst, port) == (name == "gateway"), name
                assert not connection_allowed(docs, elsewhere, dst, port), name


@pytest.mark.parametrize(
    ("src", "dst", "port", "allowed"),
    [
        ("gateway", "member-api", 8001, True),
        ("gateway", "board-api", 8002, True),
        ("gateway", "qna-api", 8003, True),
        ("gateway", "saga-api", 8004, True),
        ("gateway", "member-worker", 9101, False),
        ("board-api", "member-api", 8001, True),  # JWKS
        ("qna-api", "member-api", 8001, True),  # JWKS
        ("saga-api", "member-api", 8001, True),  # JWKS
        ("saga-api", "qna-api", 8003, True),  # pre-check
        ("saga-worker", "qna-api", 8003, True),  # pre-check
        ("board-api", "qna-api", 8003, False),
        ("member-api", "board-api", 8002, False),
        ("board-worker", "member-api", 8001, False),
        ("member-api", "gateway", 8000, False),
        # The web front end: reached through the gateway only, calls the gateway only.
        ("gateway", "web", 8005, True),
        ("web", "gateway", 8000, True),
        ("web", "member-api", 8001, False),
        ("web", "board-api", 8002, False),
        ("web", "qna-api", 8003, False),
        ("web", "saga-api", 8004, False),
        ("member-api", "web", 8005, False),
        ("board-worker", "web", 8005, False),
        ("saga-worker", "web", 8005, False),
    ],
)
def test_application_traffic(src: str, dst: str, port: int, allowed: bool) -> None:
    for overlay in OVERLAYS:
        docs = rendered(overlay)
        assert connection_allowed(docs, endpoint(docs, src), endpoint(docs, dst), port) is allowed


def test_each_service_reaches_only_its_own_database() -> None:
    docs = rendered("local")
    for workload in workloads(docs):
        name = workload["metadata"]["name"]
        if name in INFRA:
            continue
        own = name.split("-")[0]
        for svc in SERVICES_WITH_DATABASE:
            db = endpoint(docs, f"{svc}-db")
            expected = svc == own and name != "kafka-topics"
            assert connection_allowed(docs, endpoint(docs, name), db, 5432) is expected, (
                f"{name} -> {svc}-db"
            )


def test_kafka_and_redis_clients() -> None:
    docs = rendered("local")
    kafka, redis = endpoint(docs, "kafka"), endpoint(docs, "redis")
    for workload in workloads(docs):
        name = workload["metadata"]["name"]
        if name in INFRA:
            continue
        src = endpoint(docs, name)
        uses_kafka = name.endswith(("-api", "-worker")) or name == "kafka-topics"
        uses_redis = name.endswith(("-api", "-worker")) or name in SINGLE_PROCESS
        assert connection_allowed(docs, src, kafka, 9092) is uses_kafka, name
        assert connection_allowed(docs, src, redis, 6379) is uses_redis, name


def test_production_egress_to_external_infrastructure_is_by_address() -> None:
    """Outside the cluster a policy can only name addresses; each service gets its own."""
    docs = rendered("production")
    database_cidrs: dict[str, set[str]] = {}
    for policy in of_kind(docs, "NetworkPolicy"):
        name, labels = policy["metadata"]["name"], policy["metadata"].get("labels", {})
        cidrs_by_port: dict[int, set[str]] = {}
        for rule in policy["spec"].get("egress") or []:
            for port in rule.get("ports", []):
                cidrs_by_port.setdefault(port["port"], set()).update(
                    peer["ipBlock"]["cidr"] for peer in rule["to"] if "ipBlock" in peer
                )
        owner = labels.get("egress.msa-board.example.com/postgres")
        if owner:
            assert len(cidrs_by_port.get(5432, set())) == 1, name
            database_cidrs.setdefault(owner, set()).update(cidrs_by_port[5432])
        else:
            assert 5432 not in cidrs_by_port, name
        assert (6379 in cidrs_by_port) == ("egress.msa-board.example.com/redis" in labels), name
        assert (9092 in cidrs_by_port) == ("egress.msa-board.example.com/kafka" in labels), name
    assert set(database_cidrs) == set(SERVICES_WITH_DATABASE)
    assert all(len(cidrs) == 1 for cidrs in database_cidrs.values())
    assert len({cidr for cidrs in database_cidrs.values() for cidr in cidrs}) == 4


def test_dns_is_allowed_for_every_pod(docs: tuple[Manifest, ...]) -> None:
    dns = Endpoint({"k8s-app": "kube-dns"}, namespace="kube-system")
    for workload in workloads(docs):
        src = Endpoint(pod_labels(workload))
        policies = of_kind(docs, "NetworkPolicy")
        egress_rules = [
            rule
            for p in policies
            if "Egress" in p["spec"]["policyTypes"]
            and selector_matches(p["spec"]["podSelector"], src.labels)
            for rule in p["spec"].get("egress") or []
        ]
        assert any(
            any(
                port.get("port") == 53 and port.get("protocol") == "UDP"
                for port in rule.get("ports", [])
            )
            and connection_allowed(docs, src, dns, 53)
            for rule in egress_rules
        ), workload["metadata"]["name"]


def test_trusted_proxy_hops_are_set_where_a_proxy_stands_in_front() -> None:
    """The gateway believes X-Forwarded-For from the Ingress controller and web (whose API
    calls carry a browser's address), the APIs and web from the gateway only (docs/CONVENTIONS.md
    "Fairness"); a broad range is safe only while the network policies keep everyone else away
    from the port."""
    for overlay in OVERLAYS:
        docs = rendered(overlay)
        for workload in workloads(docs):
            name = workload["metadata"]["name"]
            if not name.endswith("-api") and name not in SINGLE_PROCESS:
                continue
            for container in containers(workload):
                value = configmap_env(docs, container).get("FORWARDED_ALLOW_IPS", "")
                networks = [ipaddress.ip_network(item.strip()) for item in value.split(",")]
                assert networks, f"{overlay}/{name}: FORWARDED_ALLOW_IPS is not set"
                assert all(n.is_private for n in networks), f"{overlay}/{name}: {value}"
                # Nobody but the proxy in front can open a connection: not a pod of the
                # namespace without our labels, not a pod of another namespace.
                dst = Endpoint(pod_labels(workload))
                for port in (p["containerPort"] for p in container.get("ports", [])):
                    for intruder in (
                        Endpoint({"app": "intruder"}),
                        Endpoint({"app": "intruder"}, namespace="default"),
                    ):
                        assert not connection_allowed(docs, intruder, dst, port), name


def trusted_proxies(
    docs: tuple[Manifest, ...], deployment: str
) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    """The networks a Deployment believes X-Forwarded-For from (FORWARDED_ALLOW_IPS)."""
    (container,) = containers(by_name(docs, "Deployment")[deployment])
    value = configmap_env(docs, container)["FORWARDED_ALLOW_IPS"]
    return [ipaddress.ip_network(item.strip()) for item in value.split(",")]


def test_web_is_reached_only_through_the_gateway_whose_trust_covers_it() -> None:
    """Only the gateway may call web (so web may believe its X-Forwarded-For from the pod
    network), by web's own policy too, not only by the callers' egress rules; and the gateway
    believes web's pod network in turn: web's API calls carry the browser's address, so each
    browser keeps its own rate-limit bucket behind the front end."""
    for overlay in OVERLAYS:
        docs = rendered(overlay)
        web = endpoint(docs, "web")
        (container,) = containers(by_name(docs, "Deployment")["web"])
        (port,) = (p["containerPort"] for p in container["ports"])
        callers = {
            w["metadata"]["name"]
            for w in workloads(docs)
            if connection_allowed(docs, Endpoint(pod_labels(w)), web, port)
        }
        assert callers == {"gateway"}, f"{overlay}: {sorted(callers)}"
        admitted = {
            w["metadata"]["name"]
            for w in workloads(docs)
            if ingress_allowed(docs, Endpoint(pod_labels(w)), web, port)
        }
        assert admitted == {"gateway"}, f"{overlay}: web's policy admits {sorted(admitted)}"
        gateway_trusts = trusted_proxies(docs, "gateway")
        for network in trusted_proxies(docs, "web"):  # the pod network, where web's pods live
            assert any(
                network.network_address in g and network.broadcast_address in g
                for g in gateway_trusts
            ), f"{overlay}: the gateway does not believe web's pods ({network})"


URL = re.compile(r"^https?://([a-z0-9-]+):(\d+)(/.*)?$")


def test_every_upstream_address_is_a_service_its_caller_may_reach(
    docs: tuple[Manifest, ...],
) -> None:
    """Each *_URL http://<name>:<port> in a Deployment's own ConfigMap (the gateway's MEMBER_URL ...
    WEB_URL, web's GATEWAY_URL, saga's QNA_URL) names a Service with that port whose pods the
    Deployment's NetworkPolicy lets it reach."""
    maps, services = by_name(docs, "ConfigMap"), by_name(docs, "Service")
    checked = set()
    for deployment in of_kind(docs, "Deployment"):
        name = deployment["metadata"]["name"]
        src = Endpoint(pod_labels(deployment))
        for container in containers(deployment):
            own = [
                maps[s["configMapRef"]["name"]].get("data", {})
                for s in container.get("envFrom", [])
                if "configMapRef" in s and not s["configMapRef"]["name"].startswith("platform")
            ]
            for key, value in ((k, v) for data in own for k, v in data.items()):
                match = URL.match(value)
                if not key.endswith("_URL") or not match:
                    continue
                host, port = match.group(1), int(match.group(2))
                assert host in services, f"{name}: {key}={value} names no Service"
                service = services[host]["spec"]
                (service_port,) = (p for p in service["ports"] if p["port"] == port)
                targets = [
                    w
                    for w in workloads(docs)
                    if selector_matches({"matchLabels": service["selector"]}, pod_labels(w))
                ]
                assert targets, f"{name}: Service {host} selects no workload"
                for target in targets:
                    named = {
                        p["name"]: p["containerPort"]
                        for c in containers(target)
                        for p in c.get("ports", [])
                    }
                    target_port = named.get(service_port["targetPort"], service_port["targetPort"])
                    assert connection_allowed(
                        docs, src, Endpoint(pod_labels(target)), int(target_port)
                    ), f"{name}: {key}={value} is blocked by the network policies"
                checked.add((name, key))
    assert {("gateway", "WEB_URL"), ("web", "GATEWAY_URL"), ("saga-api", "QNA_URL")} <= checked


def test_the_rollout_explains_a_conflict_with_another_field_manager() -> None:
    """kubectl's conflict error becomes what to do: the manager named, the move command."""
    stderr = (
        'error: Apply failed with 2 conflicts: conflicts with "kubectl-client-side-apply" '
        'using apps/v1:\n- .spec.template.spec.containers[name="member"].envFrom\n'
    )
    advice = apply_tool().conflict_advice(stderr, "msa-board", ["-k", "deploy/k8s/overlays/local"])
    assert "kubectl-client-side-apply" in advice
    assert "python deploy/k8s/apply.py -k deploy/k8s/overlays/local --force-conflicts" in advice
    assert "Nothing was changed" in advice
    assert apply_tool().conflict_advice("error: field is immutable", "msa-board", []) is None


def test_every_object_carries_the_release_label(docs: tuple[Manifest, ...]) -> None:
    """``apply.py --prune`` finds the release's objects by ``app.kubernetes.io/part-of``.

    An object without it is never pruned, and apply.py refuses to prune at all (it cannot
    tell the release's objects from others'), so an overlay's own objects need it too.
    """
    unlabelled = [
        f"{doc['kind']}/{doc['metadata']['name']}"
        for doc in docs
        if (doc["metadata"].get("labels") or {}).get("app.kubernetes.io/part-of") != "msa-board"
    ]
    assert not unlabelled, f"objects without app.kubernetes.io/part-of=msa-board: {unlabelled}"


def test_every_overlay_ships_the_alert_rules_as_they_are_in_deploy_observability(
    docs: tuple[Manifest, ...],
) -> None:
    """One source for compose, `make observe` and the cluster (docs/observability.md "Alerts")."""
    source = (ROOT / "deploy" / "observability" / "alerts.yml").read_text(encoding="utf-8")
    rules = by_name(docs, "ConfigMap")["prometheus-alert-rules"]
    assert rules["data"] == {"alerts.yml": source}
    assert rules["metadata"]["labels"]["prometheus-rules"] == "msa-board"

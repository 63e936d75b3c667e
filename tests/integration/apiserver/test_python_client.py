"""The official `kubernetes` Python client works unchanged with skiff's kubeconfig."""

from __future__ import annotations

from typing import Any

from kubernetes import client, config, watch


def test_official_client_crud_and_watch(apiserver: Any, namespace: str) -> None:
    api_client = config.new_client_from_config(config_file=str(apiserver.kubeconfig))
    core = client.CoreV1Api(api_client)
    apps = client.AppsV1Api(api_client)
    names = [ns.metadata.name for ns in core.list_namespace().items]
    assert "kube-system" in names

    cm = client.V1ConfigMap(metadata=client.V1ObjectMeta(name="from-client"), data={"a": "1"})
    core.create_namespaced_config_map(namespace, cm)
    got = core.read_namespaced_config_map("from-client", namespace)
    assert got.data == {"a": "1"}

    dep = client.V1Deployment(
        metadata=client.V1ObjectMeta(name="d"),
        spec=client.V1DeploymentSpec(
            replicas=1,
            selector=client.V1LabelSelector(match_labels={"app": "d"}),
            template=client.V1PodTemplateSpec(
                metadata=client.V1ObjectMeta(labels={"app": "d"}),
                spec=client.V1PodSpec(containers=[client.V1Container(name="c", image="nginx")]),
            ),
        ),
    )
    apps.create_namespaced_deployment(namespace, dep)
    scale = apps.read_namespaced_deployment_scale("d", namespace)
    assert scale.spec.replicas == 1
    apps.patch_namespaced_deployment_scale("d", namespace, {"spec": {"replicas": 4}})
    assert apps.read_namespaced_deployment("d", namespace).spec.replicas == 4

    w = watch.Watch()
    events = []
    for event in w.stream(core.list_namespaced_config_map, namespace, timeout_seconds=5):
        events.append((event["type"], event["object"].metadata.name))
        break
    assert events == [("ADDED", "from-client")]
    core.delete_namespaced_config_map("from-client", namespace)
    api_client.close()


def test_official_client_create_from_yaml_and_delete_with_propagation(
    apiserver: Any, namespace: str, tmp_path: Any
) -> None:
    from kubernetes import utils

    manifest = tmp_path / "app.yaml"
    manifest.write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: from-yaml}\ndata: {a: '1'}\n---\n"
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: yd}\nspec:\n  replicas: 1\n"
        "  selector: {matchLabels: {app: yd}}\n  template:\n    metadata: {labels: {app: yd}}\n"
        "    spec: {containers: [{name: c, image: nginx}]}\n"
    )
    api_client = config.new_client_from_config(config_file=str(apiserver.kubeconfig))
    utils.create_from_yaml(api_client, str(manifest), namespace=namespace)
    core, apps = client.CoreV1Api(api_client), client.AppsV1Api(api_client)
    assert core.read_namespaced_config_map("from-yaml", namespace).data == {"a": "1"}
    pods = core.list_namespaced_pod(namespace, watch=False)
    assert pods.items == []  # no controller-manager on this apiserver
    apps.delete_namespaced_deployment(
        "yd", namespace, body=client.V1DeleteOptions(propagation_policy="Orphan")
    )
    # Orphan adds the orphan finalizer: the object waits for the garbage collector.
    deleting = apps.read_namespaced_deployment("yd", namespace)
    assert deleting.metadata.deletion_timestamp is not None
    assert deleting.metadata.finalizers == ["orphan"]
    api_client.close()

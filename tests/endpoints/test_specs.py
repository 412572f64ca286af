"""Azure online endpoint/deployment YAML, and traffic splits (no processes)."""

from __future__ import annotations

from pathlib import Path

import pytest

from jupyter_mlws.assets.yaml_io import load_yaml, validate_spec
from jupyter_mlws.endpoints.router import RouteTable
from jupyter_mlws.endpoints.specs import DeploymentSpec, EndpointSpec, check_traffic, parse_traffic
from jupyter_mlws.errors import SpecError, ValidationError

AZURE_DEPLOYMENT = """\
$schema: https://azuremlschemas.azureedge.net/latest/managedOnlineDeployment.schema.json
name: blue
endpoint_name: my-endpoint
model: azureml:sklearn-model:1
code_configuration:
  code: ../../model-1/onlinescoring/
  scoring_script: score.py
environment:
  conda_file: ../../model-1/environment/conda.yaml
  image: mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu20.04:latest
instance_type: Standard_DS3_v2
instance_count: 1
request_settings:
  request_timeout_ms: 3000
  max_concurrent_requests_per_instance: 2
liveness_probe:
  initial_delay: 10
  period: 10
  timeout: 2
  success_threshold: 1
  failure_threshold: 30
readiness_probe:
  initial_delay: 10
  period: 10
  failure_threshold: 3
environment_variables:
  WORKERS: 2
app_insights_enabled: true
"""


def test_an_azure_deployment_file_is_read_with_what_it_ignores_noted(tmp_path: Path) -> None:
    path = tmp_path / "blue.yml"
    path.write_text(AZURE_DEPLOYMENT)
    data, index = load_yaml(path)
    spec = validate_spec(DeploymentSpec, data, source=str(path), index=index)
    assert spec.model == "azureml:sklearn-model:1"
    assert spec.request_settings.max_concurrent_requests_per_instance == 2
    assert spec.readiness_probe.failure_threshold == 3
    assert spec.environment_variables == {"WORKERS": "2"}
    notes = spec.notes()
    assert any("instance_type Standard_DS3_v2" in n for n in notes)
    assert any("app_insights_enabled" in n for n in notes)


def test_a_misspelt_field_points_at_its_line(tmp_path: Path) -> None:
    path = tmp_path / "blue.yml"
    path.write_text(AZURE_DEPLOYMENT.replace("instance_count", "instance_cout"))
    data, index = load_yaml(path)
    with pytest.raises(SpecError, match=r"blue.yml:12: field 'instance_cout': unknown field"):
        validate_spec(DeploymentSpec, data, source=str(path), index=index)


@pytest.mark.parametrize("name", ["a", "-abc", "abc-", "my_endpoint", "x" * 33, "1abc"])
def test_endpoint_names_follow_azure(name: str) -> None:
    with pytest.raises(SpecError, match="not allowed"):
        validate_spec(EndpointSpec, {"name": name})


def test_endpoint_auth_modes_and_notes() -> None:
    spec = validate_spec(EndpointSpec, {"name": "my-ep", "auth_mode": "aml_token"})
    assert spec.notes() == ["auth_mode aml_token is served as key authentication locally"]
    with pytest.raises(SpecError, match="auth_mode"):
        validate_spec(EndpointSpec, {"name": "my-ep", "auth_mode": "password"})


def test_traffic_is_parsed_and_checked() -> None:
    assert parse_traffic("blue=90 green=10") == {"blue": 90, "green": 10}
    assert parse_traffic("blue=90,green=10") == {"blue": 90, "green": 10}
    for bad, message in (("blue", "NAME=PERCENT"), ("blue=x", "whole percentage"),
                         ("blue=101", "between 0 and 100")):
        with pytest.raises(ValidationError, match=message):
            parse_traffic(bad)
    check_traffic({"blue": 90, "green": 10}, {"blue", "green"}, "ep")
    check_traffic({"blue": 0}, {"blue"}, "ep")
    with pytest.raises(ValidationError, match="sums to 110%"):
        check_traffic({"blue": 100, "green": 10}, {"blue", "green"}, "ep")
    with pytest.raises(ValidationError, match="red"):
        check_traffic({"red": 100}, {"blue"}, "ep")


def test_the_route_table_checks_bearer_keys_and_draws_by_weight() -> None:
    import random

    table = RouteTable(ports={"blue": (1,), "green": (2,)}, traffic={"blue": 100, "green": 0},
                       keys=("k1", "k2"))
    assert table.authorized("Bearer k1") and table.authorized("bearer k2")
    assert not table.authorized(None) and not table.authorized("Bearer k3")
    assert not table.authorized("Basic k1") and not table.authorized("Bearer ")
    rng = random.Random(0)
    assert {table.pick(rng) for _ in range(50)} == {"blue"}
    assert RouteTable(traffic={"blue": 0}).pick(rng) is None

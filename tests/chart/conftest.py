"""Shared fixtures of the chart checks: paths, the Kubernetes versions to validate against, rendering."""

from __future__ import annotations

import os
import pathlib
import re
import subprocess

import kubernetes_validate
import pytest
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "s3-sentinel"
MIN_VERSION = (1, 30, 0)


def kubernetes_versions() -> list[str]:
    """Every Kubernetes version from 1.30.0 to the newest whose schemas kubernetes-validate ships."""
    schema_dir = pathlib.Path(kubernetes_validate.__file__).parent / "kubernetes-json-schema"
    versions = set()
    for entry in schema_dir.iterdir():
        m = re.fullmatch(r"v(\d+)\.(\d+)\.(\d+)-local-strict", entry.name)
        if m and tuple(int(x) for x in m.groups()) >= MIN_VERSION:
            versions.add(tuple(int(x) for x in m.groups()))
    assert versions, f"no schemas found in {schema_dir}"
    return [".".join(str(x) for x in v) for v in sorted(versions)]


def load_docs(text: str) -> list[dict]:
    return [d for d in yaml.safe_load_all(text) if d]


@pytest.fixture(scope="session")
def versions() -> list[str]:
    return kubernetes_versions()


@pytest.fixture(scope="session")
def operator_objects(tmp_path_factory) -> list[dict]:
    """Every object the operator builds for its fixtures, dumped by the Rust `crdgen` binary.

    Set S3_SENTINEL_OBJECTS to a pre-built dump to skip the cargo invocation."""
    prebuilt = os.environ.get("S3_SENTINEL_OBJECTS")
    if prebuilt:
        return load_docs(pathlib.Path(prebuilt).read_text())
    out = tmp_path_factory.mktemp("objects") / "objects.yaml"
    subprocess.run(
        ["cargo", "run", "--quiet", "-p", "s3-sentinel-operator", "--bin", "crdgen", "--", "--dump-objects", str(out)],
        cwd=ROOT,
        check=True,
    )
    return load_docs(out.read_text())

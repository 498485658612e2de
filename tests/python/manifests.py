"""Validates the scale-out manifests in a Markdown file offline, against their schemas.

Each block marked `<!-- manifest: kubernetes -->` (YAML) is checked with kubernetes-validate (the
Kubernetes API's OpenAPI schemas, strict: an unknown field is an error) for KUBERNETES_VERSION; each
marked `<!-- manifest: aws-batch-submit-job -->` (JSON, `aws batch submit-job --cli-input-json`) with
botocore's own request validator and the Batch API model it ships. Then what quantlake needs of them:
a worker command, an indexed (array) job, and the count variable equal to the number of workers.

Usage: manifests.py FILE.md; prints one line per manifest; exits 1 on the first problem.
"""

import json
import re
import sys

import botocore.session
import kubernetes_validate
import yaml
from botocore.validate import ParamValidator

KUBERNETES_VERSION = "1.30.0"

BLOCK = re.compile(r"<!-- manifest: ([a-z0-9-]+) -->\s*```(\w+)\n(.*?)```", re.S)


def env_of(pairs) -> dict:
    return {e["name"]: e.get("value") for e in pairs or []}


def kubernetes(doc: dict) -> str:
    kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
    spec = doc["spec"]
    assert doc["kind"] == "Job" and spec.get("completionMode") == "Indexed", "an Indexed Job"
    (container,) = spec["template"]["spec"]["containers"]
    assert "worker" in container["args"], container["args"]
    count = env_of(container.get("env")).get("JOB_COMPLETION_COUNT")
    assert count == str(spec["completions"]), f"JOB_COMPLETION_COUNT {count!r} != completions {spec['completions']}"
    return f"Kubernetes {KUBERNETES_VERSION} Job, {spec['completions']} indexed workers"


def aws_batch_submit_job(request: dict) -> str:
    model = botocore.session.get_session().get_service_model("batch")
    report = ParamValidator().validate(request, model.operation_model("SubmitJob").input_shape)
    assert not report.has_errors(), report.generate_report()
    size = request["arrayProperties"]["size"]
    overrides = request["containerOverrides"]
    assert "worker" in overrides["command"], overrides["command"]
    count = env_of(overrides.get("environment")).get("AWS_BATCH_JOB_ARRAY_SIZE")
    assert count == str(size), f"AWS_BATCH_JOB_ARRAY_SIZE {count!r} != arrayProperties.size {size}"
    return f"AWS Batch SubmitJob ({model.api_version}), an array of {size} workers"


CHECKS = {"kubernetes": (kubernetes, yaml.safe_load), "aws-batch-submit-job": (aws_batch_submit_job, json.loads)}


def main(path: str) -> None:
    blocks = BLOCK.findall(open(path).read())
    assert blocks, f"{path} marks no manifest"
    for kind, _, text in blocks:
        check, parse = CHECKS[kind]
        print(f"{kind}: {check(parse(text))}")


if __name__ == "__main__":
    main(sys.argv[1])

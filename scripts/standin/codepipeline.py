"""CodePipeline additions to moto 5.2.5, following the AWS CodePipeline API
reference (https://docs.aws.amazon.com/codepipeline/latest/APIReference/).
"""

import json
from datetime import datetime

from moto.codepipeline.responses import CodePipelineResponse as Response
from moto.core.exceptions import JsonRESTError

from patching import extend


class PipelineNameInUseException(JsonRESTError):
    code = 400

    def __init__(self, name, account):
        super().__init__(
            "PipelineNameInUseException",
            f"A pipeline with the name '{name}' already exists in account '{account}'",
        )


@extend(Response, "create_pipeline")
def create_pipeline(original, self):
    # "The specified pipeline name is already in use": moto answered
    # InvalidStructureException, which names a malformed declaration instead.
    name = (self._get_param("pipeline") or {}).get("name")
    if name in self.codepipeline_backend.pipelines:
        raise PipelineNameInUseException(name, self.current_account)
    return original(self)


def _epoch(value):
    """An ISO 8601 time as epoch seconds, the JSON protocol's timestamp format."""
    if isinstance(value, str):
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    return value


def _timestamps(body, path, fields):
    """Convert `fields` of the object(s) at `path` in a JSON answer."""
    answer = json.loads(body)
    targets = answer.get(path) if path else answer
    for target in targets if isinstance(targets, list) else [targets or {}]:
        for field in fields:
            if field in target:
                target[field] = _epoch(target[field])
    return json.dumps(answer)


# PipelineMetadata.created/updated and PipelineSummary.created/updated are
# timestamps, sent by AWS as epoch seconds; moto sent ISO strings, which SDKs
# that follow the awsJson1_1 protocol (Rust, Go) cannot read.
@extend(Response, "get_pipeline")
def get_pipeline(original, self):
    return _timestamps(original(self), "metadata", ("created", "updated", "pollingDisabledAt"))


@extend(Response, "list_pipelines")
def list_pipelines(original, self):
    return _timestamps(original(self), "pipelines", ("created", "updated"))

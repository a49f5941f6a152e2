"""CodeBuild additions to moto 5.2.5, following the AWS CodeBuild API reference
(https://docs.aws.amazon.com/codebuild/latest/APIReference/).

moto keeps a project as the dict BatchGetProjects returns
(``CodeBuild.project_metadata``), so fields are stored straight into it.
"""

from urllib.parse import urlparse

from moto.codebuild.exceptions import (
    InvalidInputException,
    ResourceAlreadyExistsException,
    ResourceNotFoundException,
)
import moto.codebuild.responses as moto_responses
from moto.codebuild.responses import (
    CodeBuildResponse as Response,
    _validate_required_params_environment,
    _validate_required_params_service_role,
)
from moto.core.responses import ActionResult, EmptyResult
from moto.core.utils import unix_time
from moto.moto_api._internal import mock_random

from patching import extend, operation

_moto_validate_source = moto_responses._validate_required_params_source

# "For source code settings that are specified in the source action of a
# pipeline in CodePipeline, location should not be specified": moto required
# a location for every source type, so no project could build for a pipeline.
SOURCES_WITHOUT_LOCATION = ("CODEPIPELINE", "NO_SOURCE")


def _validate_required_params_source(source):
    if source.get("type") in SOURCES_WITHOUT_LOCATION and not source.get("location"):
        return
    _moto_validate_source(source)


_moto_validate_artifacts = moto_responses._validate_required_params_artifacts


# Artifacts of type CODEPIPELINE: "CodePipeline ignores this value if
# specified ... CodePipeline manages its build output locations".
def _validate_required_params_artifacts(artifacts):
    if artifacts.get("type") == "CODEPIPELINE" and not artifacts.get("location"):
        return
    _moto_validate_artifacts(artifacts)


# moto's CreateProject looks the validators up in its module at call time.
moto_responses._validate_required_params_source = _validate_required_params_source
moto_responses._validate_required_params_artifacts = _validate_required_params_artifacts

# CreateProject/UpdateProject members that moto's CreateProject ignores.
DROPPED_FIELDS = (
    "secondarySources",
    "secondarySourceVersions",
    "secondaryArtifacts",
    "encryptionKey",
    "fileSystemLocations",
    "buildBatchConfig",
    "concurrentBuildLimit",
    "autoRetryLimit",
)

# UpdateProject members stored as given (badgeEnabled is reported as badge).
UPDATABLE_FIELDS = DROPPED_FIELDS + (
    "description",
    "source",
    "sourceVersion",
    "artifacts",
    "cache",
    "environment",
    "serviceRole",
    "timeoutInMinutes",
    "queuedTimeoutInMinutes",
    "tags",
    "vpcConfig",
    "logsConfig",
)

# Defaults CodeBuild reports when the member is omitted: timeoutInMinutes "The
# default is 60 minutes" (CreateProject); queuedTimeoutInMinutes 480 as in the
# create-project/update-project examples of the AWS CLI reference.
DEFAULT_TIMEOUTS = {"timeoutInMinutes": 60, "queuedTimeoutInMinutes": 480}

CREATE_WEBHOOK_FIELDS = (
    "branchFilter",
    "filterGroups",
    "buildType",
    "manualCreation",
    "scopeConfiguration",
    "pullRequestBuildPolicy",
)
UPDATE_WEBHOOK_FIELDS = ("branchFilter", "filterGroups", "buildType", "pullRequestBuildPolicy")

# Sources that cannot notify CodeBuild (CreateWebhook: "GitHub or Bitbucket repository").
NO_WEBHOOK_SOURCES = ("CODECOMMIT", "CODEPIPELINE", "S3")


def _given(response, fields):
    values = {field: response._get_param(field) for field in fields}
    return {field: value for field, value in values.items() if value is not None}


def _badge(response, enabled):
    """ProjectBadge: badgeRequestUrl is the public URL of an enabled badge."""
    if not enabled:
        return {"badgeEnabled": False}
    url = f"https://codebuild.{response.region}.amazonaws.com/badges"
    return {"badgeEnabled": True, "badgeRequestUrl": f"{url}?uuid={mock_random.token_urlsafe(32)}"}


def _project(response, name):
    project = response.codebuild_backend.codebuild_projects.get(name)
    if project is None:
        arn = (
            f"arn:{response.partition}:codebuild:{response.region}"
            f":{response.current_account}:project/{name}"
        )
        raise ResourceNotFoundException(f"Project cannot be found: {arn}")
    return project


# --- Projects ---------------------------------------------------------------


@extend(Response, "create_project")
def create_project(original, self):
    result = original(self)
    metadata = result.result["project"]
    metadata.update(_given(self, DROPPED_FIELDS))
    for field, default in DEFAULT_TIMEOUTS.items():
        if self._get_param(field) is None:
            metadata[field] = default
    metadata["badge"] = _badge(self, self._get_param("badgeEnabled"))
    metadata["lastModified"] = metadata["created"]
    return result


def _validate_update(response, changes):
    """The checks moto's CreateProject applies, for the members being changed."""
    validators = {
        "source": _validate_required_params_source,
        "artifacts": _validate_required_params_artifacts,
        "environment": _validate_required_params_environment,
    }
    for field, validate in validators.items():
        if field in changes:
            validate(changes[field])
    if "serviceRole" in changes:
        _validate_required_params_service_role(
            response.current_account, response.region, changes["serviceRole"]
        )


@operation(Response)
def update_project(self):
    """UpdateProject: changes only the members given and returns the project."""
    project = _project(self, self._get_param("name"))
    changes = _given(self, UPDATABLE_FIELDS)
    _validate_update(self, changes)
    metadata = project.project_metadata
    metadata.update(changes)
    if changes.get("concurrentBuildLimit") == -1:
        del metadata["concurrentBuildLimit"]  # "To remove this limit, set this value to -1."
    if self._get_param("badgeEnabled") is not None:
        metadata["badge"] = _badge(self, self._get_param("badgeEnabled"))
    # StartBuild reads the role from the model object rather than the metadata.
    project.service_role = metadata["serviceRole"]
    metadata["lastModified"] = unix_time()
    return ActionResult({"project": metadata})


# --- Webhooks ---------------------------------------------------------------


def _repository_hook_url(source, hook_id):
    """The GitHub (Enterprise) API URL of the repository webhook CodeBuild creates."""
    location = urlparse(source.get("location", ""))
    parts = location.path.strip("/").removesuffix(".git").split("/")
    if len(parts) != 2:
        return None
    if source["type"] == "GITHUB":
        return f"https://api.github.com/repos/{parts[0]}/{parts[1]}/hooks/{hook_id}"
    if source["type"] == "GITHUB_ENTERPRISE":
        return f"https://{location.netloc}/api/v3/repos/{parts[0]}/{parts[1]}/hooks/{hook_id}"
    return None


def _supports_secret(source):
    return source["type"] != "BITBUCKET"  # "A Bitbucket webhook does not support secret."


def _with_secret(webhook):
    """Webhook.secret is returned by the call that sets or rotates it."""
    return dict(webhook, secret=mock_random.get_random_hex(40))


@operation(Response)
def create_webhook(self):
    project = _project(self, self._get_param("projectName"))
    metadata = project.project_metadata
    source = metadata["source"]
    if "webhook" in metadata:
        raise ResourceAlreadyExistsException(f"Webhook already exists for project: {project.arn}")
    if source["type"] in NO_WEBHOOK_SOURCES:
        raise InvalidInputException(f"Webhooks are not supported for source type {source['type']}")
    webhook = _given(self, CREATE_WEBHOOK_FIELDS)
    webhook["payloadUrl"] = (
        f"https://codebuild.{self.region}.amazonaws.com/webhooks"
        f"?t={mock_random.token_urlsafe(48)}&v=1"
    )
    webhook["lastModifiedSecret"] = unix_time()
    webhook["status"] = "ACTIVE"
    # manualCreation: "CodeBuild doesn't create a webhook in GitHub".
    if not webhook.get("manualCreation"):
        url = _repository_hook_url(source, mock_random.randint(10**8, 10**9))
        if url:
            webhook["url"] = url
    metadata["webhook"] = webhook
    return ActionResult({"webhook": _with_secret(webhook) if _supports_secret(source) else webhook})


def _webhook(response):
    project = _project(response, response._get_param("projectName"))
    webhook = project.project_metadata.get("webhook")
    if webhook is None:
        raise ResourceNotFoundException(f"Webhook not found for project: {project.arn}")
    return project, webhook


@operation(Response)
def update_webhook(self):
    """UpdateWebhook: changes only the members given; rotateSecret issues a new
    secret ("If you use Bitbucket for your repository, rotateSecret is ignored")."""
    project, webhook = _webhook(self)
    webhook.update(_given(self, UPDATE_WEBHOOK_FIELDS))
    rotate = self._get_param("rotateSecret")
    if not (rotate and _supports_secret(project.project_metadata["source"])):
        return ActionResult({"webhook": webhook})
    webhook["lastModifiedSecret"] = unix_time()
    return ActionResult({"webhook": _with_secret(webhook)})


@operation(Response)
def delete_webhook(self):
    project, _ = _webhook(self)
    del project.project_metadata["webhook"]
    return EmptyResult()

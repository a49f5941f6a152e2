"""ECS additions to moto 5.2.5, following the Amazon ECS API reference
(https://docs.aws.amazon.com/AmazonECS/latest/APIReference/).

moto's serializer walks the botocore output shape and reads each member from
the snake_case attribute of the same name, so storing a request member on
the model is enough for every Describe/Create/Update response to report it.
"""

import copy
import math
import os
import re
import time
import uuid

from botocore import xform_name
from moto.core.utils import utcnow
from moto.ecs.exceptions import InvalidParameterException
from moto.ecr.models import ecr_backends
from moto.ecs.models import Service
from moto.ecs.responses import EC2ContainerServiceResponse as Response
from moto.moto_api._internal import mock_random
from moto.servicediscovery.models import servicediscovery_backends

from patching import extend

# CreateService members that the Service shape reports but moto never stores.
SERVICE_FIELDS = (
    "capacityProviderStrategy",
    "deploymentConfiguration",
    "placementConstraints",
    "placementStrategy",
    "healthCheckGracePeriodSeconds",
    "enableECSManagedTags",
    "enableExecuteCommand",
    "availabilityZoneRebalancing",
)

# Service attributes behind the UpdateService members documented as
# "This parameter triggers a new service deployment".
ROLLOUT_ATTRIBUTES = (
    "task_definition",
    "network_configuration",
    "platform_version",
    "load_balancers",
    "service_registries",
    "service_connect_configuration",
)

FARGATE_PROVIDERS = ("FARGATE", "FARGATE_SPOT")

# Class-level defaults, so services moto creates by other paths (CloudFormation)
# have these attributes too. serviceConnectConfiguration is not a Service member:
# AWS reports it on the deployments only.
for _attribute in [xform_name(f) for f in SERVICE_FIELDS] + ["service_connect_configuration"]:
    setattr(Service, _attribute, None)


# --- Cloud Map namespaces ---------------------------------------------------


def _namespace_arn(response, name_or_arn, create):
    """The ARN of the Cloud Map namespace with this name or ARN.

    ClusterServiceConnectDefaultsRequest: "If you enter a new name, a Cloud Map
    namespace will be created" (HTTP type); other callers pass create=False and
    get an unknown name back unchanged.
    """
    if name_or_arn.startswith("arn:"):
        return name_or_arn
    cloud_map = servicediscovery_backends[response.current_account][response.region]
    for namespace in cloud_map.list_namespaces():
        if namespace.name == name_or_arn:
            return namespace.arn
    if not create:
        return name_or_arn
    operation_id = cloud_map.create_http_namespace(
        name_or_arn, creator_request_id=None, description=None, tags=[]
    )
    namespace_id = cloud_map.get_operation(operation_id).targets["NAMESPACE"]
    return cloud_map.get_namespace(namespace_id).arn


# --- Clusters ---------------------------------------------------------------


def _set_service_connect_defaults(response, cluster):
    namespace = (response._get_param("serviceConnectDefaults") or {}).get("namespace")
    if namespace is None:
        return
    # UpdateCluster: an empty namespace removes the Service Connect defaults.
    cluster.service_connect_defaults = (
        {"namespace": _namespace_arn(response, namespace, create=True)}
        if namespace
        else None
    )


@extend(Response, "create_cluster")
def create_cluster(original, self):
    result = original(self)
    _set_service_connect_defaults(self, result.result["cluster"])
    return result


@extend(Response, "update_cluster")
def update_cluster(original, self):
    result = original(self)
    _set_service_connect_defaults(self, result.result["cluster"])
    return result


# --- Task definitions -------------------------------------------------------


def _fill_port_mapping(mapping, network_mode):
    """PortMapping: protocol "The default is tcp"; with the awsvpc network mode
    "the hostPort is set to the same value as the containerPort"."""
    mapping.setdefault("protocol", "tcp")
    if network_mode == "awsvpc" and "containerPort" in mapping:
        mapping.setdefault("hostPort", mapping["containerPort"])


@extend(Response, "register_task_definition")
def register_task_definition(original, self):
    result = original(self)
    task_definition = result.result["taskDefinition"]
    for container in task_definition.container_definitions:
        for mapping in container["portMappings"]:
            _fill_port_mapping(mapping, task_definition.network_mode)
    # RegisterTaskDefinitionResponse.tags: "The list of tags associated with the task definition."
    if task_definition.tags:
        result.result["tags"] = task_definition.tags
    return result


# --- Services ---------------------------------------------------------------


def _uses_fargate(service):
    strategy = service.capacity_provider_strategy or []
    return service.launch_type == "FARGATE" or any(
        item["capacityProvider"] in FARGATE_PROVIDERS for item in strategy
    )


def _deployment_configuration(current, given, scheduling_strategy):
    """The given members over the current ones, plus the documented defaults:
    maximumPercent 200 for REPLICA, minimumHealthyPercent 100 for REPLICA and
    0 for DAEMON (DeploymentConfiguration)."""
    configuration = {**(current or {}), **(given or {})}
    if scheduling_strategy == "DAEMON":
        configuration.setdefault("minimumHealthyPercent", 0)
    else:
        configuration.setdefault("maximumPercent", 200)
        configuration.setdefault("minimumHealthyPercent", 100)
    return configuration


def _service_connect(response, cluster, configuration):
    """Report the namespace by ARN; an enabled configuration without one uses the
    cluster's serviceConnectDefaults namespace (ClusterServiceConnectDefaults)."""
    if not configuration:
        return configuration
    configuration = copy.deepcopy(configuration)
    if configuration.get("namespace"):
        configuration["namespace"] = _namespace_arn(
            response, configuration["namespace"], create=False
        )
    elif configuration.get("enabled") and cluster.service_connect_defaults:
        configuration["namespace"] = cluster.service_connect_defaults["namespace"]
    return configuration


def _apply_create_defaults(service, cluster, launch_type_given):
    """CreateService defaults the API reference documents and moto leaves out."""
    if not service.capacity_provider_strategy and not launch_type_given:
        # "If no capacityProviderStrategy or launchType is specified, the
        # defaultCapacityProviderStrategy for the cluster is used."
        service.capacity_provider_strategy = (
            copy.deepcopy(cluster.default_capacity_provider_strategy) or None
        )
    if service.capacity_provider_strategy:
        service.launch_type = None  # moto defaults it to EC2; a service has one or the other
    if service.platform_version is None and _uses_fargate(service):
        service.platform_version = "LATEST"
    if service.health_check_grace_period_seconds is None:
        service.health_check_grace_period_seconds = 0
    if service.availability_zone_rebalancing is None:
        service.availability_zone_rebalancing = "ENABLED"
    service.deployment_configuration = _deployment_configuration(
        None, service.deployment_configuration, service.scheduling_strategy
    )


def _describe_rollout(deployment, service):
    """Report on a deployment the configuration it rolls out (Deployment shape)."""
    deployment.update(
        taskDefinition=service.task_definition,
        launchType=service.launch_type,
        capacityProviderStrategy=service.capacity_provider_strategy,
        platformVersion=service.platform_version,
        networkConfiguration=service.network_configuration or None,
        serviceConnectConfiguration=service.service_connect_configuration,
    )


@extend(Response, "create_service")
def create_service(original, self):
    launch_type = self._get_param("launchType")
    if launch_type and self._get_param("capacityProviderStrategy"):
        raise InvalidParameterException(
            "Specifying both a launch type and capacity provider strategy is not "
            "supported. Remove one and try again."
        )
    result = original(self)
    service = result.result["service"]
    cluster = self.ecs_backend._get_cluster(self._get_param("cluster", "default"))
    for field in SERVICE_FIELDS:
        setattr(service, xform_name(field), self._get_param(field))
    service.service_connect_configuration = _service_connect(
        self, cluster, self._get_param("serviceConnectConfiguration")
    )
    _apply_create_defaults(service, cluster, launch_type)
    if service.deployments:
        deployment = service.deployments[0]
        _describe_rollout(deployment, service)
        _watch_alarms(service, deployment)
        if _pull_error(service):
            deployment.update(runningCount=0, pendingCount=service.desired_count, failedTasks=0)
            deployment.update(rolloutState="IN_PROGRESS", rolloutStateReason=f"ECS deployment {deployment['id']} in progress.")
            service.running_count, service.pending_count = 0, service.desired_count
        elif deployment.get("rolloutState") == "COMPLETED":
            _completed(service, deployment)
    return result


def _rollout(service):
    return copy.deepcopy([getattr(service, name) for name in ROLLOUT_ATTRIBUTES])


def _start_deployment(service):
    """A new PRIMARY deployment; the replaced ones stay ACTIVE until the new one
    completes, after which AWS no longer lists them (Deployment.status)."""
    if not service.deployments:
        return  # CODE_DEPLOY and EXTERNAL controllers roll out through task sets
    deployment_id = f"ecs-svc/{mock_random.randint(0, 32**12)}"
    pull_error = _pull_error(service)
    completed = service.running_count >= service.desired_count and not pull_error and not _bakes(service)
    now = utcnow()
    deployment = dict(
        service.deployments[0],
        id=deployment_id,
        status="PRIMARY",
        createdAt=now,
        updatedAt=now,
        desiredCount=service.desired_count,
        runningCount=service.running_count,
        pendingCount=service.pending_count,
        rolloutState="COMPLETED" if completed else "IN_PROGRESS",
        rolloutStateReason=f"ECS deployment {deployment_id} "
        + ("completed." if completed else "in progress."),
    )
    _describe_rollout(deployment, service)
    if pull_error:
        deployment.update(runningCount=0, pendingCount=service.desired_count, failedTasks=0)
    if completed:
        _completed(service, deployment)
        service.deployments = [deployment]
    else:
        for replaced in service.deployments:
            replaced["status"] = "ACTIVE"
        service.deployments = [deployment] + service.deployments
    _watch_alarms(service, deployment)


def _apply_update(response, service, previous_configuration):
    """Correct what moto's generic UpdateService attribute copy stores."""
    backend = response.ecs_backend
    if response._get_param("taskDefinition"):
        # moto keeps the family[:revision] as given; AWS reports the resolved ARN.
        service.task_definition = backend.describe_task_definition(
            response._get_param("taskDefinition")
        ).arn
    if response._get_param("deploymentConfiguration") is not None:
        service.deployment_configuration = _deployment_configuration(
            previous_configuration,
            response._get_param("deploymentConfiguration"),
            service.scheduling_strategy,
        )
    if response._get_param("serviceConnectConfiguration") is not None:
        cluster = backend._get_cluster(response._get_param("cluster", "default"))
        service.service_connect_configuration = _service_connect(
            response, cluster, response._get_param("serviceConnectConfiguration")
        )
    if response._get_param("capacityProviderStrategy"):
        service.launch_type = None


@extend(Response, "update_service")
def update_service(original, self):
    service = self.ecs_backend._get_service(
        self._get_param("cluster", "default"), self._get_param("service")
    )
    before = _rollout(service)
    previous_configuration = service.deployment_configuration
    # moto would only rename the current deployment; a new one is started below.
    force = self.params.pop("forceNewDeployment", False)
    running = service.running_count
    result = original(self)
    _stop_surplus_tasks(service, running)
    _apply_update(self, service, previous_configuration)
    if force or _rollout(service) != before:
        _start_deployment(service)
    return result


# --- Tasks that fail to start, the circuit breaker, draining -----------------
#
# Opt-in, like moto's own MOTO_ECS_SERVICE_* variables:
#   STANDIN_ECS_IMAGE_PULL=check   a task whose ECR image (this stand-in's ECR)
#       does not exist fails to start with CannotPullContainerError; each
#       DescribeServices counts one more failed task of such a deployment.
#   STANDIN_ECS_DRAIN_SECONDS=N    tasks take N seconds to stop after a scale-in
#       or DeleteService; the deleted service is DRAINING until then.

_ECR_IMAGE = re.compile(
    r"^(\d{12})\.dkr\.ecr\.([a-z0-9-]+)\.amazonaws\.com/([^:@]+)(?::([^@]+))?(?:@(sha256:[0-9a-f]{64}))?$"
)


def _pull_error(service):
    """CannotPullContainerError for the first image of the service's task
    definition that the stand-in's ECR does not hold, else None."""
    if os.environ.get("STANDIN_ECS_IMAGE_PULL") != "check" or not service.task_definition:
        return None
    from moto.ecs.models import ecs_backends

    backend = ecs_backends[service._account_id][service.region_name]
    definition = backend.describe_task_definition(service.task_definition)
    for container in definition.container_definitions:
        image = container.get("image", "")
        match = _ECR_IMAGE.match(image)
        if not match:
            continue
        account, region, name, tag, digest = match.groups()
        repository = ecr_backends[account][region].repositories.get(name)
        images = repository.images if repository else []
        if digest:
            found = any(i.image_digest == digest for i in images)
        else:
            found = any((tag or "latest") in i.image_tags for i in images)
        if not found:
            return (
                f"CannotPullContainerError: pull image manifest has been retried 5 time(s): "
                f"failed to resolve ref {image}: not found"
            )
    return None


def _event(service, message):
    """Service events are listed newest first (Service.events)."""
    service.events.insert(0, {"id": str(uuid.uuid4()), "createdAt": utcnow(), "message": message})


def _completed(service, deployment):
    service.standin_completed_task_definition = deployment.get("taskDefinition")


def _failure_threshold(desired):
    # "minimum threshold <= 0.5 * desired task count => maximum threshold",
    # the minimum being 3 and the maximum 200 (Rolling update, circuit breaker).
    return min(max(3, math.ceil(desired * 0.5)), 200)


def _count_failed_tasks(service):
    """One more task of each deployment that cannot pull its image has failed;
    the circuit breaker trips at its threshold and may roll the service back."""
    error = _pull_error(service)
    if not error:
        return
    breaker = (service.deployment_configuration or {}).get("deploymentCircuitBreaker") or {}
    for deployment in list(service.deployments):
        if deployment.get("rolloutState") != "IN_PROGRESS" or deployment.get("taskDefinition") != service.task_definition:
            continue
        deployment["failedTasks"] = deployment.get("failedTasks", 0) + 1
        deployment["updatedAt"] = utcnow()
        _event(service, f"(service {service.name}) (task {uuid.uuid4().hex}) failed to start: {error}")
        if not breaker.get("enable") or deployment["failedTasks"] < _failure_threshold(deployment["desiredCount"]):
            continue
        _fail(service, deployment, "ECS deployment circuit breaker: tasks failed to start.", "tasks failed to start", breaker.get("rollback"))


def _fail(service, deployment, reason, cause, rollback):
    """The deployment is FAILED (it launches no new tasks); with rollback the
    service goes back to the task definition of the last COMPLETED deployment
    in a new PRIMARY deployment."""
    deployment["rolloutState"] = "FAILED"
    deployment["rolloutStateReason"] = reason
    deployment["updatedAt"] = utcnow()
    _event(service, f"(service {service.name}) (deployment {deployment['id']}) deployment failed: {cause}.")
    target = getattr(service, "standin_completed_task_definition", None)
    if rollback and target and target != service.task_definition:
        service.task_definition = target
        _start_deployment(service)
        _event(service, f"(service {service.name}) rolling back to deployment {service.deployments[0]['id']}.")


# --- Deployment alarms -------------------------------------------------------
#
# With deploymentConfiguration.alarms.enable, ECS polls the named CloudWatch
# alarms (DescribeAlarms; here moto's CloudWatch in the same server) while a
# deployment is IN_PROGRESS: one in ALARM fails it, and with alarms.rollback
# the service rolls back as with the circuit breaker. An alarm already in ALARM
# when a deployment starts turns monitoring off for that deployment. A
# deployment that reached its steady state stays IN_PROGRESS for the bake time
# before it is COMPLETED, opt-in: STANDIN_ECS_ALARM_BAKE_SECONDS=N (default 0:
# it completes at once, as without alarms).


def _alarm_configuration(service):
    alarms = (service.deployment_configuration or {}).get("alarms") or {}
    return alarms if alarms.get("enable") and alarms.get("alarmNames") else None


def _bake_seconds():
    try:
        return max(float(os.environ.get("STANDIN_ECS_ALARM_BAKE_SECONDS", "0")), 0.0)
    except ValueError:
        return 0.0


def _bakes(service):
    return bool(_alarm_configuration(service) and _bake_seconds())


def _alarms_in_alarm(service, names):
    """The named alarms in state ALARM, in the configured order."""
    from moto.cloudwatch.models import cloudwatch_backends

    cloudwatch = cloudwatch_backends[service._account_id][service.region_name]
    firing = {a.name for a in cloudwatch.get_alarms_by_alarm_names(list(names)) if a.state_value == "ALARM"}
    return [name for name in names if name in firing]


def _watch_alarms(service, deployment):
    """Start watching a new deployment's alarms: monitored unless one is in
    ALARM already; baking until the bake time is over."""
    alarms = _alarm_configuration(service)
    if not alarms:
        return
    watches = getattr(service, "standin_alarm_watches", None) or {}
    watches[deployment["id"]] = {
        "monitored": not _alarms_in_alarm(service, alarms["alarmNames"]),
        "baked_at": time.monotonic() + _bake_seconds() if _bake_seconds() else None,
    }
    service.standin_alarm_watches = watches
    if _bakes(service) and deployment.get("rolloutState") == "COMPLETED":
        deployment["rolloutState"] = "IN_PROGRESS"
        deployment["rolloutStateReason"] = f"ECS deployment {deployment['id']} in progress."


def _poll_alarms(service):
    """Fail the PRIMARY deployment, while IN_PROGRESS, when an alarm it
    monitors is in ALARM; complete it once steady and its bake time is over."""
    alarms = _alarm_configuration(service)
    watches = getattr(service, "standin_alarm_watches", None) or {}
    service.standin_alarm_watches = watches = {d["id"]: watches[d["id"]] for d in service.deployments if d["id"] in watches}
    primary = next((d for d in service.deployments if d["status"] == "PRIMARY"), None)
    watch = watches.get(primary["id"]) if primary else None
    if not alarms or watch is None or primary.get("rolloutState") != "IN_PROGRESS":
        return
    firing = _alarms_in_alarm(service, alarms["alarmNames"]) if watch["monitored"] else []
    if firing:
        names = ", ".join(firing)
        _fail(service, primary, f"ECS deployment alarm(s) in ALARM state: {names}.", f"alarm(s) {names} in ALARM state", alarms.get("rollback"))
    elif watch["baked_at"] is not None and time.monotonic() >= watch["baked_at"] and service.running_count >= service.desired_count and not _pull_error(service):
        primary.update(rolloutState="COMPLETED", rolloutStateReason=f"ECS deployment {primary['id']} completed.", updatedAt=utcnow())
        _completed(service, primary)
        service.deployments = [primary]


def _drain_seconds():
    try:
        return max(float(os.environ.get("STANDIN_ECS_DRAIN_SECONDS", "0")), 0.0)
    except ValueError:
        return 0.0


def _stop_surplus_tasks(service, running_before):
    """moto stops surplus tasks at once; they take the drain time to stop."""
    if _drain_seconds() and service.desired_count < running_before:
        service.running_count = running_before
        service.standin_stopped_at = time.monotonic() + _drain_seconds()


def _settle(service):
    """Tasks whose drain time is over have stopped; a DRAINING service whose
    tasks have all stopped is INACTIVE (DeleteService)."""
    stopped_at = getattr(service, "standin_stopped_at", None)
    if stopped_at is not None and time.monotonic() >= stopped_at:
        service.running_count = min(service.running_count, service.desired_count if service.status == "ACTIVE" else 0)
        service.standin_stopped_at = None
    if service.status == "DRAINING" and service.standin_stopped_at is None:
        service.running_count = 0
        service.status = "INACTIVE"


@extend(Response, "delete_service")
def delete_service(original, self):
    service = self.ecs_backend._get_service(self._get_param("cluster", "default"), self._get_param("service"))
    running = service.running_count
    result = original(self)
    if _drain_seconds() and running > 0:
        # "If there are still running tasks that require cleanup, the service
        # status moves from ACTIVE to DRAINING" until they have stopped.
        service.status = "DRAINING"
        service.running_count = running
        if getattr(service, "standin_stopped_at", None) is None:
            service.standin_stopped_at = time.monotonic() + _drain_seconds()
    return result


@extend(Response, "describe_services")
def describe_services(original, self):
    cluster = self._get_param("cluster", "default")
    for name in self._get_param("services", []):
        try:
            service = self.ecs_backend._get_service(cluster, name.split("/")[-1])
        except Exception:  # reported as a MISSING failure by moto
            continue
        _settle(service)
        if service.status == "ACTIVE":
            _count_failed_tasks(service)
            _poll_alarms(service)
    return original(self)


@extend(Response, "list_services")
def list_services(original, self):
    # DRAINING and INACTIVE services "are no longer visible ... in the
    # ListServices API operation" (DeleteService); moto listed them.
    result = original(self)
    backend = self.ecs_backend
    active = {s.arn for s in backend.services.values() if s.status == "ACTIVE"}
    result.result["serviceArns"] = [arn for arn in result.result["serviceArns"] if arn in active]
    return result


# --- One-off tasks (RunTask, DescribeTasks, StopTask) ------------------------
#
# moto's tasks advance one lifecycle status per DescribeTasks (its state
# manager's "ecs::task" model, configurable through /moto-api/state-manager)
# and stop without saying why. The stand-in "runs" each container when its task
# reaches STOPPED: an `sh -c` / `bash -c` script (entryPoint + command, after
# the task's containerOverrides) is read for `echo ...` lines, its output, and
# `exit N`, its exit code (0 without one); anything else in the script is
# skipped. The output goes to the container's awslogs stream.

_SHELLS = ("sh", "bash", "/bin/sh", "/bin/bash")


def _override(task, name):
    overrides = (task.overrides or {}).get("containerOverrides") or []
    return next((o for o in overrides if o.get("name") == name), {})


def _script(definition, override):
    """The script of a `<shell> -c <script>` container, else None."""
    argv = list(definition.get("entryPoint") or []) + list(
        override.get("command") or definition.get("command") or []
    )
    if len(argv) >= 3 and argv[0] in _SHELLS and argv[1] == "-c":
        return argv[2]
    return None


def _run_script(script):
    """(output lines, exit code) of the `echo` and `exit` statements."""
    import shlex

    lines = []
    for statement in re.split(r"\n|;|&&", script or ""):
        try:
            words = shlex.split(statement)
        except ValueError:
            words = statement.split()
        if not words:
            continue
        if words[0] == "echo":
            lines.append(" ".join(words[1:]))
        elif words[0] == "exit":
            try:
                return lines, int(words[1]) % 256 if len(words) > 1 else 0
            except ValueError:
                return lines, 2  # sh: "exit: Illegal number"
    return lines, 0


def _write_awslogs(task, definition, lines):
    """Output to `<awslogs-stream-prefix>/<container>/<task-id>` in the
    container's awslogs group (LogConfiguration); a group that does not exist
    is created with `awslogs-create-group` "true", else nothing is written."""
    log = definition.get("logConfiguration") or {}
    options = log.get("options") or {}
    group, prefix = options.get("awslogs-group"), options.get("awslogs-stream-prefix")
    if log.get("logDriver") != "awslogs" or not group or not lines:
        return
    from moto.logs.models import logs_backends

    logs = logs_backends[task._account_id][options.get("awslogs-region") or task.region_name]
    if group not in logs.groups:
        if options.get("awslogs-create-group") != "true":
            return
        logs.create_log_group(group, tags={})
    stream = f"{prefix}/{definition['name']}/{task.id}" if prefix else task.id
    logs.ensure_log_stream(group, stream)
    now = int(time.time() * 1000)
    logs.put_log_events(group, stream, [{"timestamp": now, "message": line} for line in lines])


def _containers(task, definition):
    """One Container per container definition (moto reported the first only),
    with no exitCode until it has exited."""
    from moto.ecs.models import Container

    containers = []
    for container_definition in definition.container_definitions:
        container = Container(definition)
        del container.exitCode  # moto reported exit code 0 for running containers
        # Container.taskArn is the task's; moto gave the task definition's.
        container.task_arn = task.task_arn
        container.container_arn = task.task_arn.replace(":task/", ":container/", 1) + f"/{uuid.uuid4()}"
        container.name = container_definition.get("name")
        container.image = container_definition.get("image")
        container.cpu = container_definition.get("cpu", 0)
        container.memory = container_definition.get("memory")
        container.last_status = "RUNNING"
        container.standin_definition = container_definition
        containers.append(container)
    return containers


def _release_network_interfaces(task):
    """A stopped task's elastic network interface is detached and deleted
    (task lifecycle, DEPROVISIONING); moto kept it, so the subnet and
    security groups could never be deleted afterwards."""
    from moto.ec2.models import ec2_backends

    ec2 = ec2_backends[task._account_id][task.region_name]
    for attachment in task.attachments:
        if attachment.get("type") != "ElasticNetworkInterface" or attachment.get("status") == "DELETED":
            continue
        for detail in attachment["details"]:
            if detail["name"] == "networkInterfaceId" and detail["value"] in ec2.enis:
                ec2.delete_network_interface(detail["value"])
        attachment["status"] = "DELETED"


def _stopped(task, stop_code, reason):
    _release_network_interfaces(task)
    now = utcnow()
    task.desired_status = "STOPPED"
    task.stop_code = stop_code
    task.stopped_reason = reason
    task.stopping_at = task.execution_stopped_at = task.stopped_at = now
    task.standin_finished = True


def _exit(task):
    """A task that reached STOPPED by itself: its containers ran and exited."""
    for container in task.containers:
        container_definition = getattr(container, "standin_definition", None)
        if container_definition is None:
            continue
        lines, code = _run_script(_script(container_definition, _override(task, container.name)))
        _write_awslogs(task, container_definition, lines)
        container.last_status = "STOPPED"
        container.exit_code = code
    _stopped(task, "EssentialContainerExited", "Essential container in task exited")


def _private_dns_default():
    # moto's NetworkInterface sets private_dns_name only in VPCs with DNS
    # hostnames enabled, yet its ECS Task reads it for every awsvpc task.
    from moto.ec2.models.elastic_network_interfaces import NetworkInterface

    if not hasattr(NetworkInterface, "private_dns_name"):
        NetworkInterface.private_dns_name = None


_private_dns_default()


def _task_requirements():
    # Fargate container definitions may leave memory to the task; moto's
    # placement sum failed on them (None). Only EC2 placement uses the sum.
    from types import SimpleNamespace

    from moto.ecs.models import EC2ContainerServiceBackend

    original = EC2ContainerServiceBackend._calculate_task_resource_requirements

    def requirements(task_definition):
        definitions = [
            {**d, "memory": d.get("memory", d.get("memoryReservation")) or 0}
            if not ("Memory" in d or "MemoryReservation" in d)
            else d
            for d in task_definition.container_definitions
        ]
        return original(SimpleNamespace(container_definitions=definitions))

    EC2ContainerServiceBackend._calculate_task_resource_requirements = staticmethod(requirements)


_task_requirements()


def _default_security_group(response):
    """AwsVpcConfiguration.securityGroups: "If you don't specify a security
    group, the default security group for the VPC is used" (moto failed)."""
    configuration = (response.params.get("networkConfiguration") or {}).get("awsvpcConfiguration")
    if not configuration or configuration.get("securityGroups") or not configuration.get("subnets"):
        return
    from moto.ec2.models import ec2_backends

    ec2 = ec2_backends[response.current_account][response.region]
    vpc_id = ec2.get_subnet(configuration["subnets"][0]).vpc_id
    default = ec2.get_security_group_from_name("default", vpc_id=vpc_id)
    configuration["securityGroups"] = [default.id] if default else []


@extend(Response, "run_task")
def run_task(original, self):
    _default_security_group(self)
    result = original(self)
    definition = self.ecs_backend.describe_task_definition(self._get_param("taskDefinition"))
    for task in result.result["tasks"]:
        task.containers = _containers(task, definition)
        task.stop_code = task.stopped_at = None
        for attachment in task.attachments:
            attachment["details"] = [d for d in attachment["details"] if d.get("value") is not None]
    return result


@extend(Response, "describe_tasks")
def describe_tasks(original, self):
    result = original(self)
    for task in result.result["tasks"]:
        # Reading lastStatus applies the transition the describe just advanced.
        if task.last_status == "STOPPED" and not getattr(task, "standin_finished", False):
            _exit(task)
    return result


@extend(Response, "stop_task")
def stop_task(original, self):
    result = original(self)
    task = result.result["task"]
    if not getattr(task, "standin_finished", False):
        # StopTask: stopCode "UserInitiated"; the containers were stopped, not exited.
        _stopped(task, "UserInitiated", task.stopped_reason or "Task stopped by user")
        for container in task.containers:
            container.last_status = "STOPPED"
    return result

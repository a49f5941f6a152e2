"""Self-test of the moto stand-in (server.py), through boto3.

    .tools/venv/bin/python scripts/standin/test_standin.py

Starts the launcher twice on free loopback ports: once with moto's defaults
and once with MOTO_ECS_SERVICE_RUNNING / MOTO_ECS_SERVICE_FAILED_TASKS set.
"""

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import unittest

import boto3
from botocore.exceptions import ClientError

HERE = os.path.dirname(os.path.abspath(__file__))
ACCOUNT = "123456789012"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/standin"


def _free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    """server.py in a subprocess, with only the given MOTO_* variables set."""

    def __init__(self, **moto_env):
        self.port = _free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("MOTO_")}
        command = [sys.executable, os.path.join(HERE, "server.py")]
        # A file, not a pipe: werkzeug logs every request and must never block.
        self.log = tempfile.TemporaryFile()
        self.process = subprocess.Popen(
            command + ["-H", "127.0.0.1", "-p", str(self.port)],
            env={**env, **moto_env},
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )

    def wait_until_listening(self, timeout=30):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                self.log.seek(0)
                raise RuntimeError(self.log.read().decode())
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"server.py did not listen on {self.port}")

    def client(self, service):
        return boto3.client(
            service,
            endpoint_url=f"http://127.0.0.1:{self.port}",
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )

    def stop(self):
        self.process.terminate()
        self.process.wait(timeout=10)
        self.log.close()


SERVERS = {}


def setUpModule():
    SERVERS["default"] = Server()
    SERVERS["steady"] = Server(
        MOTO_ECS_SERVICE_RUNNING="2", MOTO_ECS_SERVICE_FAILED_TASKS="1"
    )
    SERVERS["faults"] = Server(
        MOTO_ECS_SERVICE_RUNNING="2", STANDIN_ECS_IMAGE_PULL="check", STANDIN_ECS_DRAIN_SECONDS="2"
    )
    SERVERS["alarms"] = Server(MOTO_ECS_SERVICE_RUNNING="2", STANDIN_ECS_ALARM_BAKE_SECONDS="1")
    for server in SERVERS.values():
        server.wait_until_listening()


def tearDownModule():
    for server in SERVERS.values():
        server.stop()


def error_code(context):
    return context.exception.response["Error"]["Code"]


def without(mapping, *keys):
    return {k: v for k, v in mapping.items() if k not in keys}


# --- ECS --------------------------------------------------------------------

SSM = f"arn:aws:ssm:us-east-1:{ACCOUNT}:parameter"
CONTAINER = {
    "name": "app",
    "image": "nginx:1.27",
    "cpu": 256,
    "memory": 512,
    "memoryReservation": 256,
    "essential": True,
    "portMappings": [
        {
            "containerPort": 8080,
            "hostPort": 8080,
            "protocol": "tcp",
            "name": "http",
            "appProtocol": "http",
        }
    ],
    "dependsOn": [{"containerName": "log-router", "condition": "START"}],
    "entryPoint": ["sh", "-c"],
    "command": ["exec nginx"],
    "workingDirectory": "/srv",
    "user": "1000:1000",
    "readonlyRootFilesystem": True,
    "ulimits": [{"name": "nofile", "softLimit": 1024, "hardLimit": 4096}],
    "linuxParameters": {
        "initProcessEnabled": True,
        "capabilities": {"add": ["SYS_PTRACE"], "drop": ["NET_RAW"]},
    },
    "stopTimeout": 30,
    "dockerLabels": {"team": "core"},
    "mountPoints": [{"sourceVolume": "data", "containerPath": "/data", "readOnly": False}],
    "secrets": [{"name": "TOKEN", "valueFrom": f"{SSM}/token"}],
    "environment": [{"name": "MODE", "value": "prod"}],
    "healthCheck": {
        "command": ["CMD-SHELL", "true"],
        "interval": 30,
        "timeout": 5,
        "retries": 3,
        "startPeriod": 10,
    },
    "logConfiguration": {
        "logDriver": "awslogs",
        "options": {"awslogs-group": "/app"},
        "secretOptions": [{"name": "key", "valueFrom": f"{SSM}/key"}],
    },
}
LOG_ROUTER = {
    "name": "log-router",
    "image": "fluent-bit",
    "memory": 128,
    "essential": True,
    "firelensConfiguration": {
        "type": "fluentbit",
        "options": {"enable-ecs-log-metadata": "true"},
    },
}
TASK_DEFINITION = {
    "networkMode": "awsvpc",
    "requiresCompatibilities": ["FARGATE"],
    "cpu": "512",
    "memory": "1024",
    "executionRoleArn": f"arn:aws:iam::{ACCOUNT}:role/execution",
    "taskRoleArn": f"arn:aws:iam::{ACCOUNT}:role/task",
    "runtimePlatform": {"cpuArchitecture": "ARM64", "operatingSystemFamily": "LINUX"},
    "ephemeralStorage": {"sizeInGiB": 30},
    "volumes": [
        {
            "name": "data",
            "efsVolumeConfiguration": {
                "fileSystemId": "fs-12345678",
                "rootDirectory": "/exports",
                "transitEncryption": "ENABLED",
                "authorizationConfig": {"accessPointId": "fsap-12345678", "iam": "ENABLED"},
            },
        },
        {"name": "scratch", "host": {"sourcePath": "/tmp"}},
    ],
}
DEPLOYMENT_CONFIGURATION = {
    "deploymentCircuitBreaker": {"enable": True, "rollback": True},
    "maximumPercent": 150,
    "minimumHealthyPercent": 50,
    "alarms": {"alarmNames": ["high-5xx"], "enable": True, "rollback": False},
}
SERVICE_CONNECT = {
    "enabled": True,
    "services": [{"portName": "http", "clientAliases": [{"port": 80, "dnsName": "app"}]}],
}
FARGATE_STRATEGY = [{"capacityProvider": "FARGATE", "weight": 1, "base": 1}]


class EcsCase(unittest.TestCase):
    server = "default"
    names = iter(range(10**6))

    @classmethod
    def setUpClass(cls):
        server = SERVERS[cls.server]
        cls.ecs = server.client("ecs")
        cls.servicediscovery = server.client("servicediscovery")
        ec2 = server.client("ec2")
        vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
        subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.1.0/24")["Subnet"]["SubnetId"]
        group = ec2.create_security_group(GroupName="standin", Description="d", VpcId=vpc)
        cls.network = {
            "awsvpcConfiguration": {
                "subnets": [subnet],
                "securityGroups": [group["GroupId"]],
                "assignPublicIp": "DISABLED",
            }
        }

    def name(self, prefix):
        return f"{prefix}-{next(self.names)}"

    def cluster(self, **kwargs):
        cluster = self.ecs.create_cluster(clusterName=self.name("cluster"), **kwargs)
        return cluster["cluster"]["clusterName"]

    def describe_cluster(self, name):
        return self.ecs.describe_clusters(clusters=[name])["clusters"][0]

    def task_definition(self, family=None):
        family = family or self.name("family")
        self.ecs.register_task_definition(
            family=family, containerDefinitions=[CONTAINER, LOG_ROUTER], **TASK_DEFINITION
        )
        return family

    def service(self, cluster, **kwargs):
        kwargs.setdefault("taskDefinition", self.task_definition())
        kwargs.setdefault("desiredCount", 2)
        name = self.name("service")
        return self.ecs.create_service(cluster=cluster, serviceName=name, **kwargs)["service"]

    def describe(self, cluster, service):
        described = self.ecs.describe_services(cluster=cluster, services=[service["serviceName"]])
        return described["services"][0]

    def namespace(self, name):
        cloud_map = self.servicediscovery
        operation = cloud_map.create_http_namespace(Name=name)["OperationId"]
        targets = cloud_map.get_operation(OperationId=operation)["Operation"]["Targets"]
        return cloud_map.get_namespace(Id=targets["NAMESPACE"])["Namespace"]["Arn"]


class ClusterTest(EcsCase):
    def test_configuration_settings_and_capacity_providers_are_echoed(self):
        configuration = {
            "executeCommandConfiguration": {
                "kmsKeyId": f"arn:aws:kms:us-east-1:{ACCOUNT}:key/k",
                "logging": "OVERRIDE",
                "logConfiguration": {
                    "cloudWatchLogGroupName": "/exec",
                    "cloudWatchEncryptionEnabled": True,
                    "s3BucketName": "exec-logs",
                    "s3EncryptionEnabled": True,
                    "s3KeyPrefix": "exec",
                },
            }
        }
        insights = [{"name": "containerInsights", "value": "disabled"}]
        strategy = [{"capacityProvider": "FARGATE", "weight": 2}]
        cluster = self.cluster(
            configuration=configuration,
            settings=[{"name": "containerInsights", "value": "enabled"}],
            capacityProviders=["FARGATE", "FARGATE_SPOT"],
            defaultCapacityProviderStrategy=FARGATE_STRATEGY,
        )
        self.ecs.update_cluster(cluster=cluster, settings=insights)
        self.ecs.put_cluster_capacity_providers(
            cluster=cluster, capacityProviders=["FARGATE"], defaultCapacityProviderStrategy=strategy
        )
        described = self.describe_cluster(cluster)
        self.assertEqual(described["configuration"], configuration)
        self.assertEqual(described["settings"], insights)
        self.assertEqual(described["capacityProviders"], ["FARGATE"])
        self.assertEqual(described["defaultCapacityProviderStrategy"], strategy)

    def test_service_connect_defaults_name_creates_a_cloud_map_namespace(self):
        name = self.name("internal")
        first = self.cluster(serviceConnectDefaults={"namespace": name})
        arn = self.describe_cluster(first)["serviceConnectDefaults"]["namespace"]
        namespaces = self.servicediscovery.list_namespaces()["Namespaces"]
        self.assertIn(
            {"Arn": arn, "Name": name, "Type": "HTTP"},
            [{k: n[k] for k in ("Arn", "Name", "Type")} for n in namespaces],
        )
        # The same name now resolves to that namespace instead of a new one.
        second = self.cluster()
        defaults = {"namespace": name}
        updated = self.ecs.update_cluster(cluster=second, serviceConnectDefaults=defaults)
        self.assertEqual(updated["cluster"]["serviceConnectDefaults"], {"namespace": arn})

    def test_service_connect_defaults_arn_is_kept_and_empty_name_removes_it(self):
        arn = self.namespace(self.name("existing"))
        cluster = self.cluster(serviceConnectDefaults={"namespace": arn})
        described = self.describe_cluster(cluster)
        self.assertEqual(described["serviceConnectDefaults"], {"namespace": arn})
        self.ecs.update_cluster(cluster=cluster, serviceConnectDefaults={"namespace": ""})
        self.assertNotIn("serviceConnectDefaults", self.describe_cluster(cluster))


class TaskDefinitionTest(EcsCase):
    def test_container_and_task_fields_are_echoed(self):
        family = self.name("family")
        tags = [{"key": "k", "value": "v"}]
        registered = self.ecs.register_task_definition(
            family=family,
            containerDefinitions=[CONTAINER, LOG_ROUTER],
            tags=tags,
            **TASK_DEFINITION,
        )
        self.assertEqual(registered["tags"], tags)
        described = self.ecs.describe_task_definition(taskDefinition=family, include=["TAGS"])
        self.assertEqual(described["tags"], tags)
        task_definition = described["taskDefinition"]
        for field, value in TASK_DEFINITION.items():
            self.assertEqual(task_definition[field], value, field)
        containers = {c["name"]: c for c in task_definition["containerDefinitions"]}
        for sent in (CONTAINER, LOG_ROUTER):
            for field, value in sent.items():
                self.assertEqual(containers[sent["name"]][field], value, field)

    def test_port_mapping_protocol_and_awsvpc_host_port_are_filled_in(self):
        for network_mode, host_port in (("awsvpc", {"hostPort": 80}), ("bridge", {})):
            container = {"name": "web", "image": "nginx", "memory": 128}
            task_definition = self.ecs.register_task_definition(
                family=self.name("ports"),
                networkMode=network_mode,
                containerDefinitions=[dict(container, portMappings=[{"containerPort": 80}])],
            )["taskDefinition"]
            self.assertEqual(
                task_definition["containerDefinitions"][0]["portMappings"],
                [{"containerPort": 80, "protocol": "tcp", **host_port}],
                network_mode,
            )

    def test_register_without_tags_returns_none(self):
        registered = self.ecs.register_task_definition(
            family=self.name("untagged"),
            containerDefinitions=[{"name": "a", "image": "a", "memory": 64}],
        )
        self.assertNotIn("tags", registered)


class CreateServiceTest(EcsCase):
    def test_plain_service_keeps_moto_behaviour(self):
        cluster = self.cluster()
        family = self.task_definition()
        service = self.service(cluster, taskDefinition=family, launchType="EC2")
        task_definition = f"arn:aws:ecs:us-east-1:{ACCOUNT}:task-definition/{family}:1"
        self.assertEqual(service["launchType"], "EC2")
        self.assertEqual(service["taskDefinition"], task_definition)
        counts = (service["desiredCount"], service["runningCount"], service["pendingCount"])
        self.assertEqual(counts, (2, 0, 2))
        self.assertEqual(service["schedulingStrategy"], "REPLICA")
        self.assertEqual(service["deploymentController"], {"type": "ECS"})
        self.assertEqual(service["propagateTags"], "NONE")
        for absent in (
            "capacityProviderStrategy",
            "platformVersion",
            "enableExecuteCommand",
            "enableECSManagedTags",
        ):
            self.assertNotIn(absent, service)
        [deployment] = service["deployments"]
        self.assertEqual(deployment["status"], "PRIMARY")
        self.assertEqual(deployment["rolloutState"], "IN_PROGRESS")
        self.assertEqual(deployment["launchType"], "EC2")
        self.assertEqual(deployment["taskDefinition"], task_definition)
        self.assertEqual(deployment["failedTasks"], 0)
        self.assertNotIn("capacityProviderStrategy", deployment)
        self.assertNotIn("serviceConnectConfiguration", deployment)
        self.assertEqual(self.describe(cluster, service)["deployments"], [deployment])

    def test_documented_defaults_are_reported(self):
        service = self.service(
            self.cluster(), launchType="FARGATE", networkConfiguration=self.network
        )
        defaults = {"maximumPercent": 200, "minimumHealthyPercent": 100}
        self.assertEqual(service["deploymentConfiguration"], defaults)
        self.assertEqual(service["healthCheckGracePeriodSeconds"], 0)
        self.assertEqual(service["availabilityZoneRebalancing"], "ENABLED")
        self.assertEqual(service["platformVersion"], "LATEST")
        self.assertEqual(service["deployments"][0]["platformVersion"], "LATEST")

    def test_daemon_minimum_healthy_percent_default(self):
        service = self.service(self.cluster(), schedulingStrategy="DAEMON", launchType="EC2")
        self.assertEqual(service["deploymentConfiguration"], {"minimumHealthyPercent": 0})

    def test_request_fields_are_stored_and_described(self):
        cluster = self.cluster()
        namespace = self.namespace(self.name("mesh"))
        service_connect = dict(SERVICE_CONNECT, namespace=namespace)
        sent = {
            "capacityProviderStrategy": FARGATE_STRATEGY,
            "deploymentConfiguration": DEPLOYMENT_CONFIGURATION,
            "enableExecuteCommand": True,
            "enableECSManagedTags": True,
            "healthCheckGracePeriodSeconds": 60,
            "platformVersion": "1.4.0",
            "propagateTags": "SERVICE",
            "placementConstraints": [{"type": "distinctInstance"}],
            "placementStrategy": [{"type": "spread", "field": "attribute:ecs.availability-zone"}],
            "availabilityZoneRebalancing": "DISABLED",
            "serviceRegistries": [
                {
                    "registryArn": f"arn:aws:servicediscovery:us-east-1:{ACCOUNT}:service/srv-1",
                    "containerName": "app",
                    "containerPort": 8080,
                }
            ],
            "loadBalancers": [
                {
                    "targetGroupArn": f"arn:aws:elasticloadbalancing:us-east-1:{ACCOUNT}"
                    ":targetgroup/app/1",
                    "containerName": "app",
                    "containerPort": 8080,
                }
            ],
            "networkConfiguration": self.network,
        }
        created = self.service(cluster, serviceConnectConfiguration=service_connect, **sent)
        for service in (created, self.describe(cluster, created)):
            for field, value in sent.items():
                self.assertEqual(service[field], value, field)
            self.assertNotIn("launchType", service)
            [deployment] = service["deployments"]
            self.assertEqual(deployment["capacityProviderStrategy"], FARGATE_STRATEGY)
            self.assertEqual(deployment["serviceConnectConfiguration"], service_connect)
            self.assertEqual(deployment["networkConfiguration"], self.network)
            self.assertEqual(deployment["platformVersion"], "1.4.0")
            self.assertNotIn("launchType", deployment)

    def test_cluster_default_capacity_provider_strategy_is_used(self):
        cluster = self.cluster(
            capacityProviders=["FARGATE"], defaultCapacityProviderStrategy=FARGATE_STRATEGY
        )
        service = self.service(cluster, networkConfiguration=self.network)
        self.assertEqual(service["capacityProviderStrategy"], FARGATE_STRATEGY)
        self.assertEqual(service["deployments"][0]["capacityProviderStrategy"], FARGATE_STRATEGY)
        self.assertNotIn("launchType", service)

    def test_launch_type_with_capacity_provider_strategy_is_rejected(self):
        with self.assertRaises(ClientError) as context:
            self.service(
                self.cluster(), launchType="FARGATE", capacityProviderStrategy=FARGATE_STRATEGY
            )
        self.assertEqual(error_code(context), "InvalidParameterException")

    def test_service_connect_namespace_name_and_cluster_default(self):
        name = self.name("connect")
        cluster = self.cluster(serviceConnectDefaults={"namespace": name})
        arn = self.describe_cluster(cluster)["serviceConnectDefaults"]["namespace"]
        by_default = self.service(cluster, serviceConnectConfiguration=SERVICE_CONNECT)
        by_name = self.service(
            cluster, serviceConnectConfiguration=dict(SERVICE_CONNECT, namespace=name)
        )
        for service in (by_default, by_name):
            deployment = self.describe(cluster, service)["deployments"][0]
            self.assertEqual(
                deployment["serviceConnectConfiguration"], dict(SERVICE_CONNECT, namespace=arn)
            )


class UpdateServiceTest(EcsCase):
    def setUp(self):
        self.cluster_name = self.cluster()
        self.family = self.task_definition()
        self.created = self.service(
            self.cluster_name,
            taskDefinition=self.family,
            launchType="FARGATE",
            networkConfiguration=self.network,
            deploymentConfiguration=DEPLOYMENT_CONFIGURATION,
            enableExecuteCommand=True,
            healthCheckGracePeriodSeconds=30,
        )
        self.before = self.describe(self.cluster_name, self.created)

    def update(self, **kwargs):
        service = self.created["serviceName"]
        return self.ecs.update_service(cluster=self.cluster_name, service=service, **kwargs)[
            "service"
        ]

    def test_only_given_fields_change(self):
        self.update(healthCheckGracePeriodSeconds=90, enableExecuteCommand=False)
        after = self.describe(self.cluster_name, self.created)
        self.assertEqual(after["healthCheckGracePeriodSeconds"], 90)
        self.assertIs(after["enableExecuteCommand"], False)
        changed = ("healthCheckGracePeriodSeconds", "enableExecuteCommand")
        self.assertEqual(without(after, *changed), without(self.before, *changed))

    def test_deployment_configuration_members_are_merged(self):
        updated = self.update(deploymentConfiguration={"maximumPercent": 300})
        self.assertEqual(
            updated["deploymentConfiguration"], dict(DEPLOYMENT_CONFIGURATION, maximumPercent=300)
        )
        # Documented as not triggering a new deployment.
        self.assertEqual(updated["deployments"], self.before["deployments"])

    def test_force_new_deployment_starts_a_primary_deployment(self):
        updated = self.update(forceNewDeployment=True)
        new, old = updated["deployments"]
        self.assertNotEqual(new["id"], old["id"])
        self.assertEqual(old["id"], self.before["deployments"][0]["id"])
        self.assertEqual((new["status"], old["status"]), ("PRIMARY", "ACTIVE"))
        self.assertEqual(new["rolloutState"], "IN_PROGRESS")
        self.assertEqual(new["rolloutStateReason"], f"ECS deployment {new['id']} in progress.")
        self.assertEqual(new["taskDefinition"], self.before["taskDefinition"])
        self.assertEqual(new["networkConfiguration"], self.network)
        described = self.describe(self.cluster_name, self.created)
        self.assertEqual(described["deployments"], updated["deployments"])

    def test_new_task_definition_revision_starts_a_deployment(self):
        self.task_definition(self.family)
        updated = self.update(taskDefinition=self.family)
        revision_2 = f"arn:aws:ecs:us-east-1:{ACCOUNT}:task-definition/{self.family}:2"
        self.assertEqual(updated["taskDefinition"], revision_2)
        self.assertEqual(
            [d["taskDefinition"] for d in updated["deployments"]],
            [revision_2, self.before["taskDefinition"]],
        )

    def test_unchanged_task_definition_keeps_the_deployment(self):
        updated = self.update(taskDefinition=f"{self.family}:1", desiredCount=3)
        self.assertEqual(updated["taskDefinition"], self.before["taskDefinition"])
        self.assertEqual(
            [d["id"] for d in updated["deployments"]], [self.before["deployments"][0]["id"]]
        )

    def test_service_connect_change_rolls_out_on_a_new_deployment(self):
        service_connect = dict(SERVICE_CONNECT, namespace=self.namespace(self.name("update")))
        new, old = self.update(serviceConnectConfiguration=service_connect)["deployments"]
        self.assertEqual(new["serviceConnectConfiguration"], service_connect)
        self.assertNotIn("serviceConnectConfiguration", old)

    def test_capacity_provider_strategy_replaces_the_launch_type(self):
        updated = self.update(capacityProviderStrategy=FARGATE_STRATEGY)
        self.assertEqual(updated["capacityProviderStrategy"], FARGATE_STRATEGY)
        self.assertNotIn("launchType", updated)
        # Documented as not triggering a new deployment.
        self.assertEqual(len(updated["deployments"]), 1)


class SteadyServiceTest(EcsCase):
    """MOTO_ECS_SERVICE_RUNNING=2 and MOTO_ECS_SERVICE_FAILED_TASKS=1."""

    server = "steady"

    def test_failed_tasks_are_reported_on_the_deployment(self):
        cluster = self.cluster()
        service = self.describe(cluster, self.service(cluster, launchType="EC2"))
        self.assertEqual((service["runningCount"], service["pendingCount"]), (2, 0))
        [deployment] = service["deployments"]
        self.assertEqual((deployment["failedTasks"], deployment["rolloutState"]), (1, "COMPLETED"))
        self.assertEqual(service["events"], [])

    def test_completed_deployment_replaces_the_old_one(self):
        cluster = self.cluster()
        service = self.service(cluster, launchType="EC2")
        updated = self.ecs.update_service(
            cluster=cluster, service=service["serviceName"], forceNewDeployment=True
        )["service"]
        [deployment] = updated["deployments"]
        self.assertNotEqual(deployment["id"], service["deployments"][0]["id"])
        self.assertEqual(deployment["status"], "PRIMARY")
        self.assertEqual((deployment["rolloutState"], deployment["failedTasks"]), ("COMPLETED", 1))


class FailingTasksTest(EcsCase):
    """STANDIN_ECS_IMAGE_PULL=check and STANDIN_ECS_DRAIN_SECONDS=2, with two running tasks."""

    server = "faults"

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        ecr = SERVERS[cls.server].client("ecr")
        ecr.create_repository(repositoryName="pulled")
        manifest = '{"schemaVersion": 2, "mediaType": "application/vnd.docker.distribution.manifest.v2+json"}'
        ecr.put_image(repositoryName="pulled", imageManifest=manifest, imageTag="v1")
        cls.repository = f"{ACCOUNT}.dkr.ecr.us-east-1.amazonaws.com/pulled"

    def image_definition(self, image):
        family = self.name("family")
        container = {"name": "app", "image": image, "essential": True, "memory": 512}
        self.ecs.register_task_definition(family=family, containerDefinitions=[container], **TASK_DEFINITION)
        return self.ecs.describe_task_definition(taskDefinition=family)["taskDefinition"]["taskDefinitionArn"]

    def failing_update(self, breaker):
        cluster = self.cluster()
        good = self.image_definition(f"{self.repository}:v1")
        configuration = {"deploymentCircuitBreaker": breaker}
        service = self.service(cluster, taskDefinition=good, launchType="FARGATE", deploymentConfiguration=configuration)
        self.assertEqual(service["deployments"][0]["rolloutState"], "COMPLETED")
        bad = self.image_definition(f"{self.repository}:missing")
        updated = self.ecs.update_service(cluster=cluster, service=service["serviceName"], taskDefinition=bad)["service"]
        started = updated["deployments"][0]
        self.assertEqual((started["taskDefinition"], started["rolloutState"], started["runningCount"]), (bad, "IN_PROGRESS", 0))
        return cluster, service, good, bad, started

    def test_the_breaker_rolls_back_to_the_last_completed_deployment(self):
        cluster, service, good, bad, started = self.failing_update({"enable": True, "rollback": True})
        # Two desired tasks: the threshold is the minimum of 3 failed tasks.
        for failed in (1, 2):
            [primary, _] = self.describe(cluster, service)["deployments"]
            self.assertEqual((primary["id"], primary["failedTasks"], primary["rolloutState"]), (started["id"], failed, "IN_PROGRESS"))
        described = self.describe(cluster, service)
        [primary] = described["deployments"]
        self.assertNotEqual(primary["id"], started["id"])
        self.assertEqual((primary["taskDefinition"], primary["rolloutState"]), (good, "COMPLETED"))
        self.assertEqual(described["taskDefinition"], good)
        messages = [e["message"] for e in described["events"]]
        name = service["serviceName"]
        self.assertEqual(messages[0], f"(service {name}) rolling back to deployment {primary['id']}.")
        self.assertEqual(messages[1], f"(service {name}) (deployment {started['id']}) deployment failed: tasks failed to start.")
        self.assertIn("CannotPullContainerError", messages[2])
        self.assertIn(f"{self.repository}:missing", messages[2])

    def test_without_rollback_the_failed_deployment_stays_primary(self):
        cluster, service, _, bad, started = self.failing_update({"enable": True, "rollback": False})
        for _ in range(4):
            described = self.describe(cluster, service)
        primary = described["deployments"][0]
        self.assertEqual((primary["id"], primary["taskDefinition"], primary["rolloutState"]), (started["id"], bad, "FAILED"))
        self.assertEqual(primary["rolloutStateReason"], "ECS deployment circuit breaker: tasks failed to start.")
        self.assertEqual(primary["failedTasks"], 3)

    def test_without_the_breaker_the_deployment_never_ends(self):
        cluster, service, _, _, started = self.failing_update({"enable": False, "rollback": False})
        for _ in range(5):
            described = self.describe(cluster, service)
        primary = described["deployments"][0]
        self.assertEqual((primary["id"], primary["rolloutState"], primary["failedTasks"]), (started["id"], "IN_PROGRESS", 5))
        self.assertEqual(described["runningCount"], 2)

    def test_images_outside_this_ecr_pull(self):
        cluster = self.cluster()
        service = self.service(cluster, taskDefinition=self.image_definition("nginx:1.27"), launchType="FARGATE")
        self.assertEqual(self.describe(cluster, service)["deployments"][0]["rolloutState"], "COMPLETED")

    def test_a_deleted_service_drains_before_it_is_inactive(self):
        cluster = self.cluster()
        service = self.service(cluster, launchType="FARGATE")
        name = service["serviceName"]
        self.ecs.update_service(cluster=cluster, service=name, desiredCount=0)
        self.assertEqual(self.describe(cluster, service)["runningCount"], 2)
        deleted = self.ecs.delete_service(cluster=cluster, service=name, force=True)["service"]
        self.assertEqual(deleted["status"], "DRAINING")
        self.assertEqual(self.describe(cluster, service)["status"], "DRAINING")
        self.assertNotIn(deleted["serviceArn"], self.ecs.list_services(cluster=cluster)["serviceArns"])
        time.sleep(2.2)
        described = self.describe(cluster, service)
        self.assertEqual((described["status"], described["runningCount"]), ("INACTIVE", 0))

    def test_a_scale_in_stops_tasks_after_the_drain_time(self):
        cluster = self.cluster()
        service = self.service(cluster, launchType="FARGATE")
        self.ecs.update_service(cluster=cluster, service=service["serviceName"], desiredCount=1)
        self.assertEqual(self.describe(cluster, service)["runningCount"], 2)
        time.sleep(2.2)
        self.assertEqual(self.describe(cluster, service)["runningCount"], 1)


class DeploymentAlarmTest(EcsCase):
    """deploymentConfiguration.alarms with STANDIN_ECS_ALARM_BAKE_SECONDS=1, two running tasks."""

    server = "alarms"
    BAKE = 1.1

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.cloudwatch = SERVERS[cls.server].client("cloudwatch")

    def alarm(self, state="OK"):
        name = self.name("alarm")
        self.cloudwatch.put_metric_alarm(
            AlarmName=name, MetricName="HTTPCode_Target_5XX_Count", Namespace="AWS/ApplicationELB",
            Statistic="Sum", Period=60, EvaluationPeriods=1, Threshold=5, ComparisonOperator="GreaterThanThreshold",
        )
        self.set_state(name, state)
        return name

    def set_state(self, name, state):
        self.cloudwatch.set_alarm_state(AlarmName=name, StateValue=state, StateReason="test")

    def baked_service(self, alarms):
        """A service whose first deployment has baked and completed."""
        cluster = self.cluster()
        first = self.task_definition()
        service = self.service(cluster, taskDefinition=first, launchType="FARGATE", deploymentConfiguration={"alarms": alarms})
        [started] = service["deployments"]
        self.assertEqual(started["rolloutState"], "IN_PROGRESS", "baking")
        time.sleep(self.BAKE)
        [done] = self.describe(cluster, service)["deployments"]
        self.assertEqual((done["id"], done["rolloutState"]), (started["id"], "COMPLETED"))
        return cluster, service, done["taskDefinition"]

    def update(self, cluster, service):
        second = self.task_definition()
        updated = self.ecs.update_service(cluster=cluster, service=service["serviceName"], taskDefinition=second)["service"]
        started = updated["deployments"][0]
        self.assertEqual((started["status"], started["rolloutState"], len(updated["deployments"])), ("PRIMARY", "IN_PROGRESS", 2))
        return started

    def test_an_alarm_in_alarm_fails_the_deployment_and_rolls_back(self):
        alarm = self.alarm()
        cluster, service, first = self.baked_service({"alarmNames": [alarm], "enable": True, "rollback": True})
        started = self.update(cluster, service)
        self.assertEqual(self.describe(cluster, service)["deployments"][0]["rolloutState"], "IN_PROGRESS", "no alarm yet")
        self.set_state(alarm, "ALARM")
        described = self.describe(cluster, service)
        rollback = described["deployments"][0]
        [failed] = [d for d in described["deployments"] if d["id"] == started["id"]]
        self.assertEqual((failed["id"], failed["status"], failed["rolloutState"]), (started["id"], "ACTIVE", "FAILED"))
        self.assertEqual(failed["rolloutStateReason"], f"ECS deployment alarm(s) in ALARM state: {alarm}.")
        self.assertEqual((rollback["status"], rollback["taskDefinition"], rollback["rolloutState"]), ("PRIMARY", first, "IN_PROGRESS"))
        self.assertEqual(described["taskDefinition"], first)
        name = service["serviceName"]
        messages = [e["message"] for e in described["events"]]
        self.assertEqual(messages[0], f"(service {name}) rolling back to deployment {rollback['id']}.")
        self.assertEqual(messages[1], f"(service {name}) (deployment {started['id']}) deployment failed: alarm(s) {alarm} in ALARM state.")
        # The alarm was in ALARM when the rollback started: not monitored, it completes after its bake time.
        time.sleep(self.BAKE)
        [done] = self.describe(cluster, service)["deployments"]
        self.assertEqual((done["id"], done["rolloutState"], done["taskDefinition"]), (rollback["id"], "COMPLETED", first))

    def test_without_rollback_the_failed_deployment_stays_primary(self):
        alarm = self.alarm()
        cluster, service, first = self.baked_service({"alarmNames": [self.alarm(), alarm], "enable": True, "rollback": False})
        started = self.update(cluster, service)
        self.set_state(alarm, "ALARM")
        for _ in range(2):
            described = self.describe(cluster, service)
        primary = described["deployments"][0]
        self.assertEqual((primary["id"], primary["status"], primary["rolloutState"]), (started["id"], "PRIMARY", "FAILED"))
        self.assertEqual(primary["rolloutStateReason"], f"ECS deployment alarm(s) in ALARM state: {alarm}.")
        self.assertNotEqual(described["taskDefinition"], first)
        time.sleep(self.BAKE)
        self.assertEqual(self.describe(cluster, service)["deployments"][0]["rolloutState"], "FAILED", "a failed deployment never completes")

    def test_an_alarm_already_in_alarm_when_the_deployment_starts_is_not_monitored(self):
        alarm = self.alarm()
        cluster, service, _ = self.baked_service({"alarmNames": [alarm], "enable": True, "rollback": True})
        self.set_state(alarm, "ALARM")
        started = self.update(cluster, service)
        self.assertEqual(self.describe(cluster, service)["deployments"][0]["rolloutState"], "IN_PROGRESS")
        time.sleep(self.BAKE)
        [done] = self.describe(cluster, service)["deployments"]
        self.assertEqual((done["id"], done["rolloutState"]), (started["id"], "COMPLETED"))

    def test_services_without_enabled_alarms_complete_at_once(self):
        alarm = self.alarm("ALARM")
        cluster = self.cluster()
        for configuration in ({}, {"alarms": {"alarmNames": [alarm], "enable": False, "rollback": True}}):
            service = self.service(cluster, launchType="FARGATE", deploymentConfiguration=configuration)
            self.assertEqual(service["deployments"][0]["rolloutState"], "COMPLETED")
            self.update_without_bake(cluster, service)

    def update_without_bake(self, cluster, service):
        updated = self.ecs.update_service(cluster=cluster, service=service["serviceName"], taskDefinition=self.task_definition())["service"]
        [deployment] = updated["deployments"]
        self.assertEqual(deployment["rolloutState"], "COMPLETED")
        self.assertEqual(self.describe(cluster, service)["deployments"][0]["rolloutState"], "COMPLETED")


class RunTaskTest(EcsCase):
    """One-off tasks: they advance one status per DescribeTasks (moto's
    default), then stop with their containers' exit codes and awslogs output."""

    def setUp(self):
        self.logs = SERVERS["default"].client("logs")
        self.group = self.name("/tasks")
        self.logs.create_log_group(logGroupName=self.group)
        self.clustername = self.cluster()
        self.family = self.name("job")
        log = {
            "logDriver": "awslogs",
            "options": {"awslogs-group": self.group, "awslogs-region": "us-east-1", "awslogs-stream-prefix": "job"},
        }
        self.ecs.register_task_definition(
            family=self.family,
            networkMode="awsvpc",
            requiresCompatibilities=["FARGATE"],
            cpu="256",
            memory="512",
            containerDefinitions=[
                # No container memory: Fargate takes the task's.
                {"name": "app", "image": "app:1", "command": ["sh", "-c", "echo serving; exit 0"], "logConfiguration": log},
                {"name": "sidecar", "image": "proxy:1", "essential": False},
            ],
        )

    def run_task(self, **kwargs):
        network = {"awsvpcConfiguration": without(self.network["awsvpcConfiguration"], "securityGroups")}
        answer = self.ecs.run_task(
            cluster=self.clustername, taskDefinition=self.family, launchType="FARGATE",
            networkConfiguration=network, **kwargs,
        )
        self.assertEqual(answer["failures"], [])
        return answer["tasks"][0]

    def until_stopped(self, task):
        statuses = []
        for _ in range(10):
            described = self.ecs.describe_tasks(cluster=self.clustername, tasks=[task["taskArn"]])["tasks"][0]
            statuses.append(described["lastStatus"])
            if described["lastStatus"] == "STOPPED":
                return described, statuses
        self.fail(f"never stopped: {statuses}")

    def log_lines(self, task):
        stream = f"job/app/{task['taskArn'].split('/')[-1]}"
        events = self.logs.get_log_events(logGroupName=self.group, logStreamName=stream, startFromHead=False)["events"]
        return [e["message"] for e in events]

    def test_a_task_runs_then_stops_with_the_exit_code_of_its_overridden_command(self):
        overrides = {"containerOverrides": [{"name": "app", "command": ["sh", "-c", "echo 'migrating 3 tables'; echo done && exit 3"], "environment": [{"name": "MODE", "value": "migrate"}]}]}
        task = self.run_task(startedBy="migrations", overrides=overrides)
        self.assertEqual((task["lastStatus"], task["startedBy"], task["overrides"]), ("RUNNING", "migrations", overrides))
        self.assertEqual([(c["name"], c["lastStatus"]) for c in task["containers"]], [("app", "RUNNING"), ("sidecar", "RUNNING")])
        self.assertNotIn("exitCode", task["containers"][0])
        self.assertNotIn("stopCode", task)
        self.assertTrue(all(c["taskArn"] == task["taskArn"] for c in task["containers"]))
        stopped, statuses = self.until_stopped(task)
        self.assertEqual(statuses, ["DEACTIVATING", "STOPPING", "DEPROVISIONING", "STOPPED"])
        self.assertEqual((stopped["desiredStatus"], stopped["stopCode"], stopped["stoppedReason"]), ("STOPPED", "EssentialContainerExited", "Essential container in task exited"))
        self.assertIn("stoppedAt", stopped)
        self.assertEqual([(c["name"], c["lastStatus"], c["exitCode"]) for c in stopped["containers"]], [("app", "STOPPED", 3), ("sidecar", "STOPPED", 0)])
        self.assertEqual(self.log_lines(task), ["migrating 3 tables", "done"])
        # The task's network interface went with it.
        self.assertEqual(stopped["attachments"][0]["status"], "DELETED")
        eni = {d["name"]: d["value"] for d in task["attachments"][0]["details"]}["networkInterfaceId"]
        ec2 = SERVERS["default"].client("ec2")
        self.assertEqual(ec2.describe_network_interfaces(Filters=[{"Name": "network-interface-id", "Values": [eni]}])["NetworkInterfaces"], [])
        listed = self.ecs.list_tasks(cluster=self.clustername, startedBy="migrations")["taskArns"]
        self.assertEqual(listed, [task["taskArn"]])

    def test_the_definition_command_runs_without_an_override(self):
        stopped, _ = self.until_stopped(self.run_task())
        self.assertEqual(stopped["containers"][0]["exitCode"], 0)
        self.assertEqual(self.log_lines(stopped), ["serving"])

    def assert_no_stream(self, task):
        stream = f"job/app/{task['taskArn'].split('/')[-1]}"
        streams = self.logs.describe_log_streams(logGroupName=self.group)["logStreams"]
        self.assertNotIn(stream, [s["logStreamName"] for s in streams])

    def test_a_command_that_is_not_a_shell_script_exits_0_without_output(self):
        overrides = {"containerOverrides": [{"name": "app", "command": ["bin/migrate", "--all"]}]}
        stopped, _ = self.until_stopped(self.run_task(overrides=overrides))
        self.assertEqual(stopped["containers"][0]["exitCode"], 0)
        self.assert_no_stream(stopped)

    def test_stop_task_is_user_initiated_and_keeps_no_exit_code(self):
        task = self.run_task()
        stopped = self.ecs.stop_task(cluster=self.clustername, task=task["taskArn"], reason="deadline")["task"]
        self.assertEqual((stopped["lastStatus"], stopped["stopCode"], stopped["stoppedReason"]), ("STOPPED", "UserInitiated", "deadline"))
        described = self.ecs.describe_tasks(cluster=self.clustername, tasks=[task["taskArn"]])["tasks"][0]
        self.assertEqual((described["lastStatus"], described["stopCode"]), ("STOPPED", "UserInitiated"))
        self.assertTrue(all("exitCode" not in c for c in described["containers"]))
        self.assertEqual(described["attachments"][0]["status"], "DELETED")
        self.assert_no_stream(task)

    def test_the_vpc_default_security_group_is_used_when_none_is_given(self):
        task = self.run_task()
        details = {d["name"]: d["value"] for d in task["attachments"][0]["details"]}
        ec2 = SERVERS["default"].client("ec2")
        eni = ec2.describe_network_interfaces(NetworkInterfaceIds=[details["networkInterfaceId"]])["NetworkInterfaces"][0]
        self.assertEqual([g["GroupName"] for g in eni["Groups"]], ["default"])
        self.assertNotIn("privateDnsName", details)


# --- CodeBuild --------------------------------------------------------------

PROJECT = {
    "description": "stand-in project",
    "source": {
        "type": "GITHUB",
        "location": "https://github.com/octo/app.git",
        "buildspec": "version: 0.2\nphases:\n  build:\n    commands: [make]\n",
        "gitCloneDepth": 1,
        "reportBuildStatus": True,
    },
    "secondarySources": [
        {"type": "S3", "location": "bucket/extra.zip", "sourceIdentifier": "extra"}
    ],
    "secondarySourceVersions": [{"sourceIdentifier": "extra", "sourceVersion": "v1"}],
    "sourceVersion": "main",
    "artifacts": {"type": "NO_ARTIFACTS"},
    "secondaryArtifacts": [{"type": "S3", "location": "bucket", "artifactIdentifier": "reports"}],
    "cache": {"type": "LOCAL", "modes": ["LOCAL_DOCKER_LAYER_CACHE"]},
    "environment": {
        "type": "LINUX_CONTAINER",
        "image": "aws/codebuild/standard:7.0",
        "computeType": "BUILD_GENERAL1_SMALL",
        "privilegedMode": True,
        "environmentVariables": [{"name": "STAGE", "value": "ci", "type": "PLAINTEXT"}],
        "imagePullCredentialsType": "CODEBUILD",
    },
    "serviceRole": ROLE,
    "timeoutInMinutes": 30,
    "queuedTimeoutInMinutes": 120,
    "encryptionKey": f"arn:aws:kms:us-east-1:{ACCOUNT}:key/build",
    "tags": [{"key": "team", "value": "core"}],
    "logsConfig": {
        "cloudWatchLogs": {"status": "ENABLED", "groupName": "/build", "streamName": "app"},
        "s3Logs": {"status": "DISABLED"},
    },
    "concurrentBuildLimit": 2,
    "fileSystemLocations": [
        {"type": "EFS", "location": "fs-1.efs.us-east-1.amazonaws.com:/", "mountPoint": "/mnt"}
    ],
    "buildBatchConfig": {"serviceRole": ROLE, "timeoutInMins": 30},
    "autoRetryLimit": 2,
}
FILTER_GROUPS = [
    [
        {"type": "EVENT", "pattern": "PUSH"},
        {"type": "HEAD_REF", "pattern": "^refs/heads/main$", "excludeMatchedPattern": False},
    ],
    [{"type": "EVENT", "pattern": "PULL_REQUEST_CREATED,PULL_REQUEST_UPDATED"}],
]


class CodeBuildCase(unittest.TestCase):
    names = iter(range(10**6))

    @classmethod
    def setUpClass(cls):
        cls.codebuild = SERVERS["default"].client("codebuild")

    def project(self, **overrides):
        name = f"project-{next(self.names)}"
        self.codebuild.create_project(name=name, **{**PROJECT, **overrides})
        return name

    def get(self, name):
        [project] = self.codebuild.batch_get_projects(names=[name])["projects"]
        return project

    def assertFails(self, code, call, **kwargs):
        with self.assertRaises(ClientError) as context:
            call(**kwargs)
        self.assertEqual(error_code(context), code, call)


class ProjectTest(CodeBuildCase):
    def test_a_pipeline_source_needs_no_location(self):
        source = {"type": "CODEPIPELINE", "buildspec": "app/buildspec.yml"}
        name = self.project(source=source, artifacts={"type": "CODEPIPELINE"})
        self.assertEqual(self.get(name)["source"], source)
        self.codebuild.update_project(name=name, source={"type": "NO_SOURCE", "buildspec": "version: 0.2"})
        self.assertEqual(self.get(name)["source"]["type"], "NO_SOURCE")
        self.assertFails("InvalidInputException", self.codebuild.create_project, name="no-location", **{**PROJECT, "source": {"type": "GITHUB"}})

    def test_create_project_keeps_every_field(self):
        project = self.get(self.project(badgeEnabled=True))
        for field, value in PROJECT.items():
            self.assertEqual(project[field], value, field)
        self.assertIs(project["badge"]["badgeEnabled"], True)
        self.assertRegex(
            project["badge"]["badgeRequestUrl"],
            r"^https://codebuild\.us-east-1\.amazonaws\.com/badges\?uuid=.+",
        )
        self.assertEqual(project["lastModified"], project["created"])

    def test_omitted_fields_get_the_documented_defaults(self):
        name = f"minimal-{next(self.names)}"
        required = ("source", "artifacts", "environment", "serviceRole")
        self.codebuild.create_project(name=name, **{k: PROJECT[k] for k in required})
        project = self.get(name)
        timeouts = (project["timeoutInMinutes"], project["queuedTimeoutInMinutes"])
        self.assertEqual(timeouts, (60, 480))
        self.assertEqual(project["badge"], {"badgeEnabled": False})
        self.assertEqual(project["encryptionKey"], f"arn:aws:kms:us-east-1:{ACCOUNT}:alias/aws/s3")

    def test_update_project_changes_only_the_given_fields(self):
        name = self.project()
        before = self.get(name)
        role = f"arn:aws:iam::{ACCOUNT}:role/other"
        changes = {
            "environment": dict(
                PROJECT["environment"], privilegedMode=False, computeType="BUILD_GENERAL1_MEDIUM"
            ),
            "source": dict(PROJECT["source"], buildspec="version: 0.2\n"),
            "timeoutInMinutes": 90,
            "serviceRole": role,
        }
        updated = self.codebuild.update_project(name=name, badgeEnabled=True, **changes)["project"]
        self.assertEqual(updated, self.get(name))
        for field, value in changes.items():
            self.assertEqual(updated[field], value, field)
        self.assertIs(updated["badge"]["badgeEnabled"], True)
        self.assertGreaterEqual(updated["lastModified"], before["lastModified"])
        unchanged = (*changes, "badge", "lastModified")
        self.assertEqual(without(updated, *unchanged), without(before, *unchanged))
        self.assertEqual(self.codebuild.start_build(projectName=name)["build"]["serviceRole"], role)

    def test_update_project_concurrent_build_limit_minus_one_removes_it(self):
        name = self.project()
        self.codebuild.update_project(name=name, concurrentBuildLimit=-1)
        self.assertNotIn("concurrentBuildLimit", self.get(name))

    def test_update_project_errors(self):
        update = self.codebuild.update_project
        self.assertFails("ResourceNotFoundException", update, name="missing", description="x")
        environment = dict(PROJECT["environment"], type="MAINFRAME")
        name = self.project()
        self.assertFails("InvalidInputException", update, name=name, environment=environment)


class WebhookTest(CodeBuildCase):
    def test_webhook_lifecycle(self):
        name = self.project()
        created = self.codebuild.create_webhook(
            projectName=name, filterGroups=FILTER_GROUPS, buildType="BUILD"
        )["webhook"]
        self.assertEqual((created["filterGroups"], created["buildType"]), (FILTER_GROUPS, "BUILD"))
        self.assertRegex(created["url"], r"^https://api\.github\.com/repos/octo/app/hooks/\d+$")
        self.assertRegex(
            created["payloadUrl"],
            r"^https://codebuild\.us-east-1\.amazonaws\.com/webhooks\?t=.+&v=1$",
        )
        self.assertTrue(created["secret"])
        self.assertEqual(created["status"], "ACTIVE")
        self.assertEqual(self.get(name)["webhook"], without(created, "secret"))

        self.assertFails(
            "ResourceAlreadyExistsException", self.codebuild.create_webhook, projectName=name
        )

        updated = self.codebuild.update_webhook(
            projectName=name, filterGroups=FILTER_GROUPS[:1], buildType="BUILD_BATCH"
        )["webhook"]
        expected = dict(created, filterGroups=FILTER_GROUPS[:1], buildType="BUILD_BATCH")
        self.assertEqual(updated, without(expected, "secret"))
        self.assertEqual(self.get(name)["webhook"], updated)

        rotated = self.codebuild.update_webhook(projectName=name, rotateSecret=True)["webhook"]
        self.assertNotEqual(rotated["secret"], created["secret"])
        self.assertGreaterEqual(rotated["lastModifiedSecret"], created["lastModifiedSecret"])

        self.codebuild.delete_webhook(projectName=name)
        self.assertNotIn("webhook", self.get(name))
        self.assertFails(
            "ResourceNotFoundException", self.codebuild.delete_webhook, projectName=name
        )

    def test_organization_webhook_with_pull_request_policy(self):
        global_source = {"type": "GITHUB", "location": "CODEBUILD_DEFAULT_WEBHOOK_SOURCE_LOCATION"}
        name = self.project(source=global_source)
        scope = {"name": "octo", "scope": "GITHUB_ORGANIZATION"}
        policy = {
            "requiresCommentApproval": "FORK_PULL_REQUESTS",
            "approverRoles": ["GITHUB_ADMIN"],
        }
        created = self.codebuild.create_webhook(
            projectName=name, scopeConfiguration=scope, pullRequestBuildPolicy=policy
        )["webhook"]
        self.assertEqual(created["scopeConfiguration"], scope)
        self.assertEqual(created["pullRequestBuildPolicy"], policy)
        self.assertNotIn("url", created)  # no single repository to hook
        policy = {"requiresCommentApproval": "DISABLED"}
        self.codebuild.update_webhook(projectName=name, pullRequestBuildPolicy=policy)
        self.assertEqual(self.get(name)["webhook"]["pullRequestBuildPolicy"], policy)
        self.assertEqual(self.get(name)["webhook"]["scopeConfiguration"], scope)

    def test_branch_filter_and_manual_creation(self):
        created = self.codebuild.create_webhook(
            projectName=self.project(), branchFilter="^main$", manualCreation=True
        )["webhook"]
        self.assertEqual((created["branchFilter"], created["manualCreation"]), ("^main$", True))
        self.assertNotIn("url", created)
        self.assertTrue(created["secret"])

    def test_webhook_errors(self):
        codebuild = self.codebuild
        for call in (codebuild.create_webhook, codebuild.update_webhook, codebuild.delete_webhook):
            self.assertFails("ResourceNotFoundException", call, projectName="missing")
        s3_project = self.project(source={"type": "S3", "location": "bucket/source.zip"})
        self.assertFails("InvalidInputException", codebuild.create_webhook, projectName=s3_project)
        self.assertFails(
            "ResourceNotFoundException", codebuild.update_webhook, projectName=self.project()
        )


# --- moto behaviour checked, not changed --------------------------------------


class UnchangedServicesTest(unittest.TestCase):
    def test_target_group_attributes(self):
        server = SERVERS["default"]
        vpc = server.client("ec2").create_vpc(CidrBlock="10.9.0.0/16")["Vpc"]["VpcId"]
        elbv2 = server.client("elbv2")
        [group] = elbv2.create_target_group(
            Name="standin", Protocol="HTTP", Port=80, VpcId=vpc, TargetType="ip"
        )["TargetGroups"]
        sent = {
            "deregistration_delay.timeout_seconds": "30",
            "stickiness.enabled": "true",
            "stickiness.type": "lb_cookie",
            "stickiness.lb_cookie.duration_seconds": "3600",
        }
        elbv2.modify_target_group_attributes(
            TargetGroupArn=group["TargetGroupArn"],
            Attributes=[{"Key": k, "Value": v} for k, v in sent.items()],
        )
        described = elbv2.describe_target_group_attributes(TargetGroupArn=group["TargetGroupArn"])
        attributes = {a["Key"]: a["Value"] for a in described["Attributes"]}
        self.assertEqual({k: attributes[k] for k in sent}, sent)

    def test_scalable_target_policy_and_scheduled_action_with_timezone(self):
        server = SERVERS["default"]
        ecs = server.client("ecs")
        ecs.create_cluster(clusterName="scaling")
        ecs.register_task_definition(
            family="scaling", containerDefinitions=[{"name": "a", "image": "a", "memory": 64}]
        )
        ecs.create_service(cluster="scaling", serviceName="web", taskDefinition="scaling")
        autoscaling = server.client("application-autoscaling")
        target = {
            "ServiceNamespace": "ecs",
            "ResourceId": "service/scaling/web",
            "ScalableDimension": "ecs:service:DesiredCount",
        }
        tracking = {
            "TargetValue": 50.0,
            "PredefinedMetricSpecification": {
                "PredefinedMetricType": "ECSServiceAverageCPUUtilization"
            },
        }
        autoscaling.register_scalable_target(MinCapacity=1, MaxCapacity=4, **target)
        autoscaling.put_scaling_policy(
            PolicyName="cpu",
            PolicyType="TargetTrackingScaling",
            TargetTrackingScalingPolicyConfiguration=tracking,
            **target,
        )
        autoscaling.put_scheduled_action(
            ScheduledActionName="night",
            Schedule="cron(0 20 * * ? *)",
            Timezone="Europe/Paris",
            ScalableTargetAction={"MinCapacity": 0, "MaxCapacity": 1},
            **target,
        )
        scalables = autoscaling.describe_scalable_targets(ServiceNamespace="ecs")
        [scalable] = scalables["ScalableTargets"]
        self.assertEqual((scalable["MinCapacity"], scalable["MaxCapacity"]), (1, 4))
        [policy] = autoscaling.describe_scaling_policies(ServiceNamespace="ecs")["ScalingPolicies"]
        self.assertEqual(policy["TargetTrackingScalingPolicyConfiguration"], tracking)
        [action] = autoscaling.describe_scheduled_actions(
            ServiceNamespace="ecs", ScheduledActionNames=["night"]
        )["ScheduledActions"]
        self.assertEqual(
            (action["Schedule"], action["Timezone"]), ("cron(0 20 * * ? *)", "Europe/Paris")
        )
        self.assertEqual(action["ScalableTargetAction"], {"MinCapacity": 0, "MaxCapacity": 1})

# --- Idempotent creates -----------------------------------------------------


class EcrTest(unittest.TestCase):
    def test_an_empty_scanning_configuration_turns_scan_on_push_off(self):
        ecr = SERVERS["default"].client("ecr")
        ecr.create_repository(repositoryName="scan-off", imageScanningConfiguration={"scanOnPush": True})
        ecr.put_image_scanning_configuration(repositoryName="scan-off", imageScanningConfiguration={})
        repo = ecr.describe_repositories(repositoryNames=["scan-off"])["repositories"][0]
        self.assertEqual(repo["imageScanningConfiguration"], {"scanOnPush": False})
        ecr.put_image_scanning_configuration(repositoryName="scan-off", imageScanningConfiguration={"scanOnPush": True})
        repo = ecr.describe_repositories(repositoryNames=["scan-off"])["repositories"][0]
        self.assertEqual(repo["imageScanningConfiguration"], {"scanOnPush": True})

    def test_kms_without_a_key_uses_the_aws_managed_key(self):
        server = SERVERS["default"]
        ecr, kms = server.client("ecr"), server.client("kms")
        ecr.create_repository(repositoryName="kms-managed", encryptionConfiguration={"encryptionType": "KMS"})
        again = ecr.create_repository(repositoryName="kms-managed-2", encryptionConfiguration={"encryptionType": "KMS"})
        repo = ecr.describe_repositories(repositoryNames=["kms-managed"])["repositories"][0]
        key_arn = repo["encryptionConfiguration"]["kmsKey"]
        # One managed key per account and region, behind alias/aws/ecr, known to KMS as AWS managed.
        self.assertEqual(again["repository"]["encryptionConfiguration"]["kmsKey"], key_arn)
        meta = kms.describe_key(KeyId=key_arn)["KeyMetadata"]
        self.assertEqual(meta["KeyManager"], "AWS")
        self.assertEqual(kms.describe_key(KeyId="alias/aws/ecr")["KeyMetadata"]["Arn"], key_arn)
        # A key of the user's is used as given and stays a customer key.
        own = kms.create_key()["KeyMetadata"]
        self.assertEqual(own["KeyManager"], "CUSTOMER")
        made = ecr.create_repository(repositoryName="kms-own", encryptionConfiguration={"encryptionType": "KMS", "kmsKey": own["Arn"]})
        self.assertEqual(made["repository"]["encryptionConfiguration"], {"encryptionType": "KMS", "kmsKey": own["Arn"]})

    def test_lifecycle_rules_archive_and_expire_from_the_archive(self):
        ecr = SERVERS["default"].client("ecr")
        ecr.create_repository(repositoryName="archive-rules")
        archive = {
            "rules": [
                {"rulePriority": 1, "selection": {"tagStatus": "untagged", "countType": "sinceImagePushed", "countUnit": "days", "countNumber": 7}, "action": {"type": "expire"}},
                {
                    "rulePriority": 2,
                    "selection": {"tagStatus": "tagged", "tagPatternList": ["*"], "countType": "imageCountMoreThan", "countNumber": 5},
                    "action": {"type": "transition", "targetStorageClass": "archive"},
                },
                {
                    "rulePriority": 3,
                    "selection": {"tagStatus": "any", "countType": "sinceImagePulled", "countUnit": "days", "countNumber": 30},
                    "action": {"type": "transition", "targetStorageClass": "archive"},
                },
                {
                    "rulePriority": 4,
                    "selection": {"tagStatus": "any", "storageClass": "archive", "countType": "sinceImageTransitioned", "countUnit": "days", "countNumber": 90},
                    "action": {"type": "expire"},
                },
            ]
        }
        text = json.dumps(archive)
        ecr.put_lifecycle_policy(repositoryName="archive-rules", lifecyclePolicyText=text)
        self.assertEqual(json.loads(ecr.get_lifecycle_policy(repositoryName="archive-rules")["lifecyclePolicyText"]), archive)

        def refused(rule):
            with self.assertRaises(ClientError) as context:
                ecr.put_lifecycle_policy(repositoryName="archive-rules", lifecyclePolicyText=json.dumps({"rules": [dict(rulePriority=1, **rule)]}))
            return error_code(context)

        pushed = {"tagStatus": "any", "countType": "sinceImagePushed", "countUnit": "days", "countNumber": 30}
        transitioned = {"tagStatus": "any", "storageClass": "archive", "countType": "sinceImageTransitioned", "countUnit": "days", "countNumber": 90}
        bad = [
            {"selection": pushed, "action": {"type": "transition"}},
            {"selection": pushed, "action": {"type": "transition", "targetStorageClass": "standard"}},
            {"selection": pushed, "action": {"type": "expire", "targetStorageClass": "archive"}},
            {"selection": pushed, "action": {"type": "delete"}},
            {"selection": dict(pushed, storageClass="archive"), "action": {"type": "expire"}},
            {"selection": without(transitioned, "storageClass"), "action": {"type": "expire"}},
            {"selection": transitioned, "action": {"type": "transition", "targetStorageClass": "archive"}},
            {"selection": dict(transitioned, countNumber=89), "action": {"type": "expire"}},
            {"selection": without(pushed, "countUnit"), "action": {"type": "expire"}},
            {"selection": dict(pushed, countType="sinceImagePulled", countUnit="hours"), "action": {"type": "transition", "targetStorageClass": "archive"}},
        ]
        for rule in bad:
            self.assertEqual(refused(rule), "InvalidParameterException", rule)
        self.assertEqual(json.loads(ecr.get_lifecycle_policy(repositoryName="archive-rules")["lifecyclePolicyText"]), archive, "refused policies change nothing")


class IamTest(unittest.TestCase):
    def setUp(self):
        self.iam = SERVERS["default"].client("iam")

    def test_list_groups_filters_by_path_prefix(self):
        self.iam.create_group(GroupName="prefix-in", Path="/cxflow/standin/")
        self.iam.create_group(GroupName="prefix-deeper", Path="/cxflow/standin/sub/")
        self.iam.create_group(GroupName="prefix-out", Path="/")
        listed = [g["GroupName"] for g in self.iam.list_groups(PathPrefix="/cxflow/standin/")["Groups"]]
        self.assertEqual(sorted(listed), ["prefix-deeper", "prefix-in"])
        everything = [g["GroupName"] for g in self.iam.list_groups()["Groups"]]
        self.assertTrue({"prefix-in", "prefix-deeper", "prefix-out"} <= set(everything))

    def test_a_group_with_members_or_policies_is_not_deleted(self):
        self.iam.create_group(GroupName="conflict")
        self.iam.create_user(UserName="conflict-user")
        self.iam.add_user_to_group(GroupName="conflict", UserName="conflict-user")
        policy = '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"ecr:GetAuthorizationToken","Resource":"*"}]}'
        self.iam.put_group_policy(GroupName="conflict", PolicyName="p", PolicyDocument=policy)
        with self.assertRaises(ClientError) as context:
            self.iam.delete_group(GroupName="conflict")
        self.assertEqual(error_code(context), "DeleteConflict")
        self.iam.remove_user_from_group(GroupName="conflict", UserName="conflict-user")
        with self.assertRaises(ClientError) as context:
            self.iam.delete_group(GroupName="conflict")
        self.assertEqual(error_code(context), "DeleteConflict")
        self.iam.delete_group_policy(GroupName="conflict", PolicyName="p")
        self.iam.delete_group(GroupName="conflict")
        with self.assertRaises(ClientError) as context:
            self.iam.get_group(GroupName="conflict")
        self.assertEqual(error_code(context), "NoSuchEntity")

    def test_open_id_connect_client_ids_are_added_and_removed_idempotently(self):
        arn = self.iam.create_open_id_connect_provider(Url="https://oidc.standin.example.com", ClientIDList=["sts.amazonaws.com"])["OpenIDConnectProviderArn"]
        self.iam.add_client_id_to_open_id_connect_provider(OpenIDConnectProviderArn=arn, ClientID="extra")
        self.iam.add_client_id_to_open_id_connect_provider(OpenIDConnectProviderArn=arn, ClientID="extra")
        got = self.iam.get_open_id_connect_provider(OpenIDConnectProviderArn=arn)
        self.assertEqual(got["ClientIDList"], ["sts.amazonaws.com", "extra"])
        self.iam.remove_client_id_from_open_id_connect_provider(OpenIDConnectProviderArn=arn, ClientID="extra")
        self.iam.remove_client_id_from_open_id_connect_provider(OpenIDConnectProviderArn=arn, ClientID="never-added")
        got = self.iam.get_open_id_connect_provider(OpenIDConnectProviderArn=arn)
        self.assertEqual(got["ClientIDList"], ["sts.amazonaws.com"])
        missing = f"arn:aws:iam::{ACCOUNT}:oidc-provider/missing.example.com"
        for call in (self.iam.add_client_id_to_open_id_connect_provider, self.iam.remove_client_id_from_open_id_connect_provider):
            with self.assertRaises(ClientError) as context:
                call(OpenIDConnectProviderArn=missing, ClientID="x")
            self.assertEqual(error_code(context), "NoSuchEntity")


class IdempotencyTest(unittest.TestCase):
    def setUp(self):
        self.server = SERVERS["default"]
        self.ec2 = self.server.client("ec2")

    def test_ec2_client_token_returns_the_first_result(self):
        vpc = self.ec2.create_vpc(CidrBlock="10.20.0.0/16")["Vpc"]["VpcId"]
        first = self.ec2.create_route_table(VpcId=vpc, ClientToken="tok-1")["RouteTable"]
        again = self.ec2.create_route_table(VpcId=vpc, ClientToken="tok-1")["RouteTable"]
        self.assertEqual(first["RouteTableId"], again["RouteTableId"])
        other = self.ec2.create_route_table(VpcId=vpc, ClientToken="tok-2")["RouteTable"]
        self.assertNotEqual(first["RouteTableId"], other["RouteTableId"])
        tables = self.ec2.describe_route_tables(Filters=[{"Name": "vpc-id", "Values": [vpc]}])
        # main table + the two created ones
        self.assertEqual(len(tables["RouteTables"]), 3)

    def test_ec2_client_token_with_other_parameters_is_a_mismatch(self):
        vpc = self.ec2.create_vpc(CidrBlock="10.21.0.0/16")["Vpc"]["VpcId"]
        vpc2 = self.ec2.create_vpc(CidrBlock="10.22.0.0/16")["Vpc"]["VpcId"]
        self.ec2.create_route_table(VpcId=vpc, ClientToken="tok-3")
        with self.assertRaises(ClientError) as context:
            self.ec2.create_route_table(VpcId=vpc2, ClientToken="tok-3")
        self.assertEqual(error_code(context), "IdempotentParameterMismatch")

    def test_ec2_failed_request_does_not_hold_its_token(self):
        with self.assertRaises(ClientError):
            self.ec2.create_route_table(VpcId="vpc-00000000000000000", ClientToken="tok-4")
        vpc = self.ec2.create_vpc(CidrBlock="10.23.0.0/16")["Vpc"]["VpcId"]
        self.ec2.create_route_table(VpcId=vpc, ClientToken="tok-4")

    def _network(self, cidr):
        vpc = self.ec2.create_vpc(CidrBlock=cidr)["Vpc"]["VpcId"]
        base = cidr.split(".0.0/")[0]
        subnets = [
            self.ec2.create_subnet(VpcId=vpc, CidrBlock=f"{base}.{i}.0/24", AvailabilityZone=az)["Subnet"]["SubnetId"]
            for i, az in [(1, "us-east-1a"), (2, "us-east-1b")]
        ]
        return vpc, subnets

    def test_load_balancer_with_the_same_settings_is_returned(self):
        vpc, subnets = self._network("10.30.0.0/16")
        elbv2 = self.server.client("elbv2")
        [first] = elbv2.create_load_balancer(Name="idem", Subnets=subnets)["LoadBalancers"]
        [again] = elbv2.create_load_balancer(Name="idem", Subnets=list(reversed(subnets)))["LoadBalancers"]
        self.assertEqual(first["LoadBalancerArn"], again["LoadBalancerArn"])
        self.assertEqual(len(elbv2.describe_load_balancers(Names=["idem"])["LoadBalancers"]), 1)
        with self.assertRaises(ClientError) as context:
            elbv2.create_load_balancer(Name="idem", Subnets=subnets, Scheme="internal")
        self.assertEqual(error_code(context), "DuplicateLoadBalancerName")

    def test_target_group_with_the_same_settings_is_returned(self):
        vpc, _ = self._network("10.31.0.0/16")
        elbv2 = self.server.client("elbv2")
        args = dict(Name="idem-tg", Protocol="HTTP", Port=80, VpcId=vpc, TargetType="ip")
        [first] = elbv2.create_target_group(**args)["TargetGroups"]
        [again] = elbv2.create_target_group(**args)["TargetGroups"]
        self.assertEqual(first["TargetGroupArn"], again["TargetGroupArn"])
        with self.assertRaises(ClientError) as context:
            elbv2.create_target_group(**{**args, "Port": 8080})
        self.assertEqual(error_code(context), "DuplicateTargetGroupName")

    def test_listener_on_the_same_port_with_the_same_settings_is_returned(self):
        vpc, subnets = self._network("10.32.0.0/16")
        elbv2 = self.server.client("elbv2")
        [lb] = elbv2.create_load_balancer(Name="idem-listen", Subnets=subnets)["LoadBalancers"]
        [tg] = elbv2.create_target_group(Name="idem-listen", Protocol="HTTP", Port=80, VpcId=vpc)["TargetGroups"]
        args = dict(
            LoadBalancerArn=lb["LoadBalancerArn"],
            Protocol="HTTP",
            Port=80,
            DefaultActions=[{"Type": "forward", "TargetGroupArn": tg["TargetGroupArn"]}],
        )
        [first] = elbv2.create_listener(**args)["Listeners"]
        [again] = elbv2.create_listener(**args)["Listeners"]
        self.assertEqual(first["ListenerArn"], again["ListenerArn"])
        listeners = elbv2.describe_listeners(LoadBalancerArn=lb["LoadBalancerArn"])["Listeners"]
        self.assertEqual(len(listeners), 1)
        with self.assertRaises(ClientError) as context:
            elbv2.create_listener(**{**args, "Protocol": "TCP"})
        self.assertEqual(error_code(context), "DuplicateListener")

    def test_network_load_balancer_arns_name_their_type(self):
        vpc, subnets = self._network("10.33.0.0/16")
        elbv2 = self.server.client("elbv2")
        [nlb] = elbv2.create_load_balancer(Name="typed-net", Type="network", Subnets=subnets, Tags=[{"Key": "k", "Value": "v"}])["LoadBalancers"]
        [alb] = elbv2.create_load_balancer(Name="typed-app", Subnets=subnets)["LoadBalancers"]
        arn = nlb["LoadBalancerArn"]
        self.assertIn(":loadbalancer/net/typed-net/", arn)
        self.assertIn(":loadbalancer/app/typed-app/", alb["LoadBalancerArn"])
        [seen] = elbv2.describe_load_balancers(LoadBalancerArns=[arn])["LoadBalancers"]
        self.assertEqual((seen["Type"], seen["LoadBalancerName"]), ("network", "typed-net"))
        [tags] = elbv2.describe_tags(ResourceArns=[arn])["TagDescriptions"]
        self.assertEqual(tags["Tags"], [{"Key": "k", "Value": "v"}], "the tags moved with the ARN")
        [again] = elbv2.create_load_balancer(Name="typed-net", Type="network", Subnets=subnets)["LoadBalancers"]
        self.assertEqual(again["LoadBalancerArn"], arn, "the same settings answer with the same NLB")
        [tg] = elbv2.create_target_group(Name="typed-tcp", Protocol="TCP", Port=8080, VpcId=vpc, TargetType="ip")["TargetGroups"]
        forward = [{"Type": "forward", "TargetGroupArn": tg["TargetGroupArn"]}]
        [listener] = elbv2.create_listener(LoadBalancerArn=arn, Protocol="TCP", Port=9000, DefaultActions=forward)["Listeners"]
        self.assertIn(":listener/net/typed-net/", listener["ListenerArn"])
        [seen] = elbv2.describe_listeners(ListenerArns=[listener["ListenerArn"]])["Listeners"]
        self.assertEqual((seen["LoadBalancerArn"], seen["Protocol"], seen["Port"]), (arn, "TCP", 9000))
        elbv2.delete_listener(ListenerArn=listener["ListenerArn"])
        elbv2.delete_load_balancer(LoadBalancerArn=arn)
        self.assertEqual([lb["LoadBalancerName"] for lb in elbv2.describe_load_balancers()["LoadBalancers"] if lb["LoadBalancerName"] == "typed-net"], [])

    def test_cloud_map_creator_request_id_creates_once(self):
        sd = self.server.client("servicediscovery")
        first = sd.create_http_namespace(Name="idem-ns", CreatorRequestId="req-1")["OperationId"]
        again = sd.create_http_namespace(Name="idem-ns", CreatorRequestId="req-1")["OperationId"]
        self.assertEqual(first, again)
        named = [n for n in sd.list_namespaces()["Namespaces"] if n["Name"] == "idem-ns"]
        self.assertEqual(len(named), 1)
        sd.create_http_namespace(Name="idem-ns-2", CreatorRequestId="req-2")
        self.assertEqual(len([n for n in sd.list_namespaces()["Namespaces"] if n["Name"] == "idem-ns-2"]), 1)

class DependencyTest(unittest.TestCase):
    def test_security_group_in_use_is_not_deleted(self):
        ec2 = SERVERS["default"].client("ec2")
        vpc = ec2.create_vpc(CidrBlock="10.40.0.0/16")["Vpc"]["VpcId"]
        subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.40.1.0/24", AvailabilityZone="us-east-1a")["Subnet"]["SubnetId"]
        source = ec2.create_security_group(GroupName="src", Description="d", VpcId=vpc)["GroupId"]
        target = ec2.create_security_group(GroupName="dst", Description="d", VpcId=vpc)["GroupId"]
        ec2.authorize_security_group_ingress(
            GroupId=target, IpPermissions=[{"IpProtocol": "tcp", "FromPort": 80, "ToPort": 80, "UserIdGroupPairs": [{"GroupId": source}]}]
        )
        with self.assertRaises(ClientError) as context:
            ec2.delete_security_group(GroupId=source)
        self.assertEqual(error_code(context), "DependencyViolation")
        ec2.revoke_security_group_ingress(
            GroupId=target, IpPermissions=[{"IpProtocol": "tcp", "FromPort": 80, "ToPort": 80, "UserIdGroupPairs": [{"GroupId": source}]}]
        )
        eni = ec2.create_network_interface(SubnetId=subnet, Groups=[source])["NetworkInterface"]["NetworkInterfaceId"]
        with self.assertRaises(ClientError) as context:
            ec2.delete_security_group(GroupId=source)
        self.assertEqual(error_code(context), "DependencyViolation")
        ec2.delete_network_interface(NetworkInterfaceId=eni)
        ec2.delete_security_group(GroupId=source)
        ec2.delete_security_group(GroupId=target)

    def test_security_group_of_a_load_balancer_is_not_deleted(self):
        server = SERVERS["default"]
        ec2 = server.client("ec2")
        vpc = ec2.create_vpc(CidrBlock="10.41.0.0/16")["Vpc"]["VpcId"]
        subnets = [
            ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.41.{i}.0/24", AvailabilityZone=az)["Subnet"]["SubnetId"]
            for i, az in [(1, "us-east-1a"), (2, "us-east-1b")]
        ]
        group = ec2.create_security_group(GroupName="lb", Description="d", VpcId=vpc)["GroupId"]
        elbv2 = server.client("elbv2")
        [lb] = elbv2.create_load_balancer(Name="dep-lb", Subnets=subnets, SecurityGroups=[group])["LoadBalancers"]
        with self.assertRaises(ClientError) as context:
            ec2.delete_security_group(GroupId=group)
        self.assertEqual(error_code(context), "DependencyViolation")
        elbv2.delete_load_balancer(LoadBalancerArn=lb["LoadBalancerArn"])
        ec2.delete_security_group(GroupId=group)

    def test_address_of_a_nat_gateway_is_released_only_after_the_gateway(self):
        ec2 = SERVERS["default"].client("ec2")
        vpc = ec2.create_vpc(CidrBlock="10.42.0.0/16")["Vpc"]["VpcId"]
        subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.42.1.0/24")["Subnet"]["SubnetId"]
        allocation = ec2.allocate_address(Domain="vpc")["AllocationId"]
        nat = ec2.create_nat_gateway(SubnetId=subnet, AllocationId=allocation)["NatGateway"]["NatGatewayId"]
        with self.assertRaises(ClientError) as context:
            ec2.release_address(AllocationId=allocation)
        self.assertEqual(error_code(context), "InvalidIPAddress.InUse")
        enis = lambda: ec2.describe_network_interfaces(Filters=[{"Name": "subnet-id", "Values": [subnet]}])["NetworkInterfaces"]
        self.assertEqual(len(enis()), 1)
        ec2.delete_nat_gateway(NatGatewayId=nat)
        self.assertEqual(enis(), [])
        [address] = ec2.describe_addresses(AllocationIds=[allocation])["Addresses"]
        self.assertNotIn("AssociationId", address)
        ec2.release_address(AllocationId=allocation)


    def test_subnet_and_gateway_with_dependents_are_kept(self):
        server = SERVERS["default"]
        ec2 = server.client("ec2")
        vpc = ec2.create_vpc(CidrBlock="10.43.0.0/16")["Vpc"]["VpcId"]
        igw = ec2.create_internet_gateway()["InternetGateway"]["InternetGatewayId"]
        ec2.attach_internet_gateway(InternetGatewayId=igw, VpcId=vpc)
        subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.43.1.0/24", AvailabilityZone="us-east-1a")["Subnet"]["SubnetId"]
        other = ec2.create_subnet(VpcId=vpc, CidrBlock="10.43.2.0/24", AvailabilityZone="us-east-1b")["Subnet"]["SubnetId"]
        allocation = ec2.allocate_address(Domain="vpc")["AllocationId"]
        nat = ec2.create_nat_gateway(SubnetId=subnet, AllocationId=allocation)["NatGateway"]["NatGatewayId"]
        for call in (lambda: ec2.delete_subnet(SubnetId=subnet), lambda: ec2.detach_internet_gateway(InternetGatewayId=igw, VpcId=vpc)):
            with self.assertRaises(ClientError) as context:
                call()
            self.assertEqual(error_code(context), "DependencyViolation")
        ec2.delete_nat_gateway(NatGatewayId=nat)
        elbv2 = server.client("elbv2")
        [lb] = elbv2.create_load_balancer(Name="dep-subnet", Subnets=[subnet, other])["LoadBalancers"]
        for call in (lambda: ec2.delete_subnet(SubnetId=subnet), lambda: ec2.detach_internet_gateway(InternetGatewayId=igw, VpcId=vpc)):
            with self.assertRaises(ClientError) as context:
                call()
            self.assertEqual(error_code(context), "DependencyViolation")
        elbv2.delete_load_balancer(LoadBalancerArn=lb["LoadBalancerArn"])
        ec2.detach_internet_gateway(InternetGatewayId=igw, VpcId=vpc)
        table = ec2.create_route_table(VpcId=vpc)["RouteTable"]["RouteTableId"]
        ec2.associate_route_table(RouteTableId=table, SubnetId=subnet)
        ec2.delete_subnet(SubnetId=subnet)
        [described] = ec2.describe_route_tables(RouteTableIds=[table])["RouteTables"]
        self.assertEqual([a for a in described["Associations"] if a.get("SubnetId") == subnet], [])

class CodePipelineTest(unittest.TestCase):
    def test_a_second_pipeline_of_one_name_is_pipeline_name_in_use(self):
        server = SERVERS["default"]
        iam = server.client("iam")
        trust = {
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Principal": {"Service": "codepipeline.amazonaws.com"}, "Action": "sts:AssumeRole"}],
        }
        role = iam.create_role(RoleName="standin-pipeline", AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"]
        action = {"category": "Source", "owner": "AWS", "provider": "S3", "version": "1"}
        pipeline = {
            "name": "standin-pipeline",
            "roleArn": role,
            "artifactStore": {"type": "S3", "location": "standin-artifacts"},
            "stages": [
                {"name": "Source", "actions": [{"name": "Source", "actionTypeId": action, "outputArtifacts": [{"name": "src"}]}]},
                {"name": "Approve", "actions": [{"name": "Approve", "actionTypeId": {**action, "category": "Approval", "provider": "Manual"}}]},
            ],
        }
        codepipeline = server.client("codepipeline")
        codepipeline.create_pipeline(pipeline=pipeline, tags=[{"key": "k", "value": "v"}])
        with self.assertRaises(ClientError) as context:
            codepipeline.create_pipeline(pipeline=pipeline)
        self.assertEqual(error_code(context), "PipelineNameInUseException")
        self.assertEqual(codepipeline.get_pipeline(name="standin-pipeline")["pipeline"]["version"], 1, "the first pipeline is untouched")
        codepipeline.delete_pipeline(name="standin-pipeline")
        codepipeline.create_pipeline(pipeline=pipeline)
        metadata = raw_answer(codepipeline, "get_pipeline", name="standin-pipeline")["metadata"]
        self.assertIsInstance(metadata["created"], float, "epoch seconds, as the JSON protocol sends timestamps")
        self.assertIsInstance(metadata["updated"], float)
        [summary] = [p for p in raw_answer(codepipeline, "list_pipelines")["pipelines"] if p["name"] == "standin-pipeline"]
        self.assertIsInstance(summary["created"], float)
        self.assertEqual(codepipeline.get_pipeline(name="standin-pipeline")["metadata"]["pipelineArn"], f"arn:aws:codepipeline:us-east-1:{ACCOUNT}:standin-pipeline")
        codepipeline.delete_pipeline(name="standin-pipeline")


def raw_answer(client, operation, **params):
    """The body AWS's wire protocol carried, before botocore's lenient parsing."""
    bodies = []
    client.meta.events.register("after-call.*", lambda http_response, **_: bodies.append(http_response.content))
    getattr(client, operation)(**params)
    body = bodies[-1]
    return body if body.startswith(b"<") else json.loads(body)


class S3Test(unittest.TestCase):
    def test_get_bucket_versioning_answers_a_versioning_configuration(self):
        s3 = SERVERS["default"].client("s3")
        s3.create_bucket(Bucket="standin-versioning")
        self.assertRegex(raw_answer(s3, "get_bucket_versioning", Bucket="standin-versioning"), rb"<VersioningConfiguration[ />]")
        s3.put_bucket_versioning(Bucket="standin-versioning", VersioningConfiguration={"Status": "Enabled"})
        body = raw_answer(s3, "get_bucket_versioning", Bucket="standin-versioning")
        self.assertRegex(body, rb"<VersioningConfiguration [^>]*><Status>Enabled</Status></VersioningConfiguration>")
        self.assertEqual(s3.get_bucket_versioning(Bucket="standin-versioning")["Status"], "Enabled")
        s3.delete_bucket(Bucket="standin-versioning")


class LogsTest(unittest.TestCase):
    def test_describe_log_groups_by_identifiers(self):
        logs = SERVERS["default"].client("logs")
        for name in ["/standin/ids/a", "/standin/ids/b", "/standin/ids/c"]:
            logs.create_log_group(logGroupName=name)
        logs.put_retention_policy(logGroupName="/standin/ids/b", retentionInDays=7)
        arn = "arn:aws:logs:us-east-1:123456789012:log-group:/standin/ids/c:*"
        got = logs.describe_log_groups(logGroupIdentifiers=["/standin/ids/a", "/standin/ids/b", arn, "/standin/ids/missing"])["logGroups"]
        self.assertEqual([g["logGroupName"] for g in got], ["/standin/ids/a", "/standin/ids/b", "/standin/ids/c"])
        self.assertEqual(got[1]["retentionInDays"], 7)
        self.assertNotIn("retentionInDays", got[0])
        with self.assertRaises(logs.exceptions.InvalidParameterException):
            logs.describe_log_groups(logGroupIdentifiers=["/standin/ids/a"], logGroupNamePrefix="/standin/")
        # Without the parameter moto's own listing answers, prefix and all.
        prefixed = logs.describe_log_groups(logGroupNamePrefix="/standin/ids/")["logGroups"]
        self.assertEqual(len(prefixed), 3)
        for name in ["/standin/ids/a", "/standin/ids/b", "/standin/ids/c"]:
            logs.delete_log_group(logGroupName=name)


class CloudTrailTest(unittest.TestCase):
    """What the trail kind reads back (moto 5.2.5 stores it), and CreateTrail/DeleteTrail as AWS answers them."""

    def test_trail_logs_fields_advanced_selectors_status_and_tags_round_trip(self):
        s3 = SERVERS["default"].client("s3")
        cloudtrail = SERVERS["default"].client("cloudtrail")
        s3.create_bucket(Bucket="standin-trail")
        group = f"arn:aws:logs:us-east-1:{ACCOUNT}:log-group:/standin/audit:*"
        arn = cloudtrail.create_trail(
            Name="standin-trail",
            S3BucketName="standin-trail",
            CloudWatchLogsLogGroupArn=group,
            CloudWatchLogsRoleArn=ROLE,
            IsMultiRegionTrail=False,
            IncludeGlobalServiceEvents=False,
            TagsList=[{"Key": "cxflow:owner", "Value": "x/y"}],
        )["TrailARN"]
        self.assertEqual(arn, f"arn:aws:cloudtrail:us-east-1:{ACCOUNT}:trail/standin-trail")
        trail = cloudtrail.get_trail(Name=arn)["Trail"]
        self.assertEqual(
            (trail["S3BucketName"], trail["CloudWatchLogsLogGroupArn"], trail["CloudWatchLogsRoleArn"], trail["IsMultiRegionTrail"], trail["IncludeGlobalServiceEvents"]),
            ("standin-trail", group, ROLE, False, False),
        )
        selectors = [
            {
                "Name": "reads",
                "FieldSelectors": [
                    {"Field": "eventCategory", "Equals": ["Management"]},
                    {"Field": "readOnly", "Equals": ["true"]},
                    {"Field": "eventSource", "NotEquals": ["kms.amazonaws.com", "rdsdata.amazonaws.com"]},
                ],
            }
        ]
        cloudtrail.put_event_selectors(TrailName=arn, AdvancedEventSelectors=selectors)
        got = cloudtrail.get_event_selectors(TrailName=arn)
        self.assertEqual((got["AdvancedEventSelectors"], got.get("EventSelectors", [])), (selectors, []))
        self.assertFalse(cloudtrail.get_trail_status(Name=arn)["IsLogging"])
        cloudtrail.start_logging(Name=arn)
        self.assertTrue(cloudtrail.get_trail_status(Name=arn)["IsLogging"])
        cloudtrail.update_trail(Name=arn, IsMultiRegionTrail=True, IncludeGlobalServiceEvents=True)
        self.assertTrue(cloudtrail.get_trail(Name=arn)["Trail"]["IsMultiRegionTrail"])
        cloudtrail.add_tags(ResourceId=arn, TagsList=[{"Key": "cxflow:lease", "Value": "l"}])
        cloudtrail.remove_tags(ResourceId=arn, TagsList=[{"Key": "cxflow:lease"}])
        [tags] = cloudtrail.list_tags(ResourceIdList=[arn])["ResourceTagList"]
        self.assertEqual(tags["TagsList"], [{"Key": "cxflow:owner", "Value": "x/y"}])
        with self.assertRaises(ClientError) as e:
            cloudtrail.create_trail(Name="standin-trail", S3BucketName="standin-trail")
        self.assertEqual(e.exception.response["Error"]["Code"], "TrailAlreadyExistsException")
        self.assertTrue(cloudtrail.get_trail_status(Name=arn)["IsLogging"], "the existing trail is unchanged")
        cloudtrail.delete_trail(Name=arn)
        for call in (lambda: cloudtrail.get_trail(Name=arn), lambda: cloudtrail.delete_trail(Name=arn), lambda: cloudtrail.delete_trail(Name="standin-trail")):
            with self.assertRaises(ClientError) as e:
                call()
            self.assertEqual(e.exception.response["Error"]["Code"], "TrailNotFoundException")
        cloudtrail.create_trail(Name="standin-trail", S3BucketName="standin-trail")
        [tags] = cloudtrail.list_tags(ResourceIdList=[arn])["ResourceTagList"]
        self.assertEqual(tags["TagsList"], [], "a deleted trail's tags went with it")
        cloudtrail.delete_trail(Name="standin-trail")
        s3.delete_bucket(Bucket="standin-trail")


if __name__ == "__main__":
    unittest.main()

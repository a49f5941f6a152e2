"""Idempotent creates that moto 5.2.5 does not honour.

- Amazon EC2, "Ensuring idempotency in Amazon EC2 API requests"
  (https://docs.aws.amazon.com/ec2/latest/devguide/ec2-api-idempotency.html):
  a request repeated with the same ClientToken and the same parameters
  returns the first request's result and changes nothing; the same token with
  other parameters fails with IdempotentParameterMismatch.
- Elastic Load Balancing v2, CreateLoadBalancer / CreateTargetGroup /
  CreateListener: "This operation is idempotent, which means that it
  completes at most one time. If you attempt to create multiple ... with the
  same settings, each call succeeds"; other settings under the same name (or
  listener port) fail with DuplicateLoadBalancerName / DuplicateTargetGroupName
  / DuplicateListener.
- AWS Cloud Map: CreatorRequestId makes the create operations retryable
  without running them twice.
"""

import json
import threading

from moto.core.responses import ActionResult
from moto.ec2.exceptions import EC2ClientError
from moto.ec2.responses import EC2Response
from moto.elbv2.exceptions import DuplicateListenerError, DuplicateLoadBalancerName, DuplicateTargetGroupName
from moto.elbv2.responses import ELBV2Response
from moto.servicediscovery.responses import ServiceDiscoveryResponse

from patching import extend

# --- EC2 ClientToken --------------------------------------------------------

_tokens = {}
_tokens_lock = threading.Lock()


def _fingerprint(querystring):
    return tuple(sorted((k, tuple(v)) for k, v in querystring.items() if k not in ("ClientToken", "Version")))


@extend(EC2Response, "call_action")
def call_action(original, self):
    token = (self.querystring.get("ClientToken") or [""])[0]
    if not token:
        return original(self)
    key = (self.current_account, self.region, self._get_action(), token)
    params = _fingerprint(self.querystring)
    # One lock per process: two requests with one token must not both create.
    with _tokens_lock:
        seen = _tokens.get(key)
        if seen is not None:
            if seen[0] != params:
                err = EC2ClientError(
                    "IdempotentParameterMismatch",
                    "The client token you have provided is associated with a request that has different parameters.",
                )
                status, headers, body = self.serialized(ActionResult(err))
                headers["status"] = status
                headers, body = self._enrich_response(headers, body)
                return status, headers, body
            return seen[1]
        result = original(self)
        status = result[0] if isinstance(result, tuple) else 200
        if int(status) < 400:
            _tokens[key] = (params, result)
        return result


# --- ELBv2 same-settings creates --------------------------------------------


def _subnet_ids(params):
    ids = list(params.get("Subnets") or [])
    ids += [m.get("SubnetId") for m in params.get("SubnetMappings") or [] if m.get("SubnetId")]
    return sorted(ids)


@extend(ELBV2Response, "create_load_balancer")
def create_load_balancer(original, self):
    params = self._get_params()
    name = params.get("Name")
    for lb in list(self.elbv2_backend.load_balancers.values()):
        if lb.name != name:
            continue
        same = (
            (params.get("Scheme") or "internet-facing") == (lb.scheme or "internet-facing")
            and (params.get("Type") or "application") == lb.type
            and (params.get("IpAddressType") or "ipv4") == lb.ip_address_type
            and _subnet_ids(params) == sorted(s.id for s in lb.subnets)
            and sorted(params.get("SecurityGroups") or []) == sorted(lb.security_groups or [])
        )
        if not same:
            raise DuplicateLoadBalancerName()
        return ActionResult({"LoadBalancers": [lb]})
    return original(self)


@extend(ELBV2Response, "create_target_group")
def create_target_group(original, self):
    params = self._get_params()
    name = params.get("Name")
    for tg in list(self.elbv2_backend.target_groups.values()):
        if tg.name != name:
            continue
        same = (
            (params.get("Protocol") or None) == (tg.protocol or None)
            and str(params.get("Port") or "") == str(tg.port or "")
            and (params.get("VpcId") or None) == (tg.vpc_id or None)
            and (params.get("TargetType") or "instance") == tg.target_type
        )
        if not same:
            raise DuplicateTargetGroupName()
        return ActionResult({"TargetGroups": [tg]})
    return original(self)


@extend(ELBV2Response, "create_listener")
def create_listener(original, self):
    params = self._get_params()
    balancer = self.elbv2_backend.load_balancers.get(params.get("LoadBalancerArn"))
    if balancer is not None:
        port = str(params.get("Port"))
        certificates = [c.get("CertificateArn") for c in params.get("Certificates") or []]
        for listener in list(balancer.listeners.values()):
            if str(listener.port) != port:
                continue
            same = (params.get("Protocol") or "").upper() == listener.protocol and certificates[:1] == listener.certificates[:1]
            if not same:
                raise DuplicateListenerError()
            return ActionResult({"Listeners": [listener]})
    return original(self)


# --- Cloud Map CreatorRequestId ---------------------------------------------
# CreateHttpNamespace, CreatePrivateDnsNamespace, CreatePublicDnsNamespace,
# CreateService: "CreatorRequestId: A unique string that identifies the request
# and that allows failed requests to be retried without the risk of running the
# operation twice." A repeat within the same account and region answers as the
# first request did and creates nothing.

_creator_requests = {}


def _once_per_creator_request(operation):
    def wrap(original, self):
        request_id = (json.loads(self.body or "{}") or {}).get("CreatorRequestId")
        if not request_id:
            return original(self)
        key = (self.current_account, self.region, operation, request_id)
        with _tokens_lock:
            if key in _creator_requests:
                return _creator_requests[key]
            answer = original(self)
            _creator_requests[key] = answer
            return answer

    return wrap


for _operation in ("create_http_namespace", "create_private_dns_namespace", "create_public_dns_namespace", "create_service"):
    extend(ServiceDiscoveryResponse, _operation)(_once_per_creator_request(_operation))

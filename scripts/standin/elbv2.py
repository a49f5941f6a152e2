"""ELBv2 load balancer ARNs by type, which moto 5.2.5 does not honour.

Elastic Load Balancing v2, "Resource types defined by Elastic Load Balancing
V2" (https://docs.aws.amazon.com/service-authorization/latest/reference/list_elasticloadbalancingv2.html):
an Application Load Balancer is ``loadbalancer/app/<name>/<id>``, a Network
Load Balancer ``loadbalancer/net/<name>/<id>`` and a Gateway Load Balancer
``loadbalancer/gwy/<name>/<id>``; their listeners follow
(``listener/net/<name>/<id>/<listener-id>``). moto named every type ``app``.
"""

import functools

from moto.elbv2.models import ELBv2Backend

_PREFIX = {"network": "net", "gateway": "gwy"}


def _typed_arn(original):
    @functools.wraps(original)
    def create_load_balancer(self, *args, **kwargs):
        lb = original(self, *args, **kwargs)
        prefix = _PREFIX.get(kwargs.get("loadbalancer_type") or "")
        if prefix is None or ":loadbalancer/app/" not in lb.arn:
            return lb
        old = lb.arn
        new = old.replace(":loadbalancer/app/", f":loadbalancer/{prefix}/", 1)
        tags = self.tagging_service.list_tags_for_resource(old)["Tags"]
        self.tagging_service.delete_all_tags_for_resource(old)
        self.load_balancers.pop(old, None)
        lb.arn = new
        self.load_balancers[new] = lb
        if tags:
            self.tagging_service.tag_resource(new, tags)
        return lb

    return create_load_balancer


ELBv2Backend.create_load_balancer = _typed_arn(ELBv2Backend.create_load_balancer)

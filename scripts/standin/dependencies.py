"""Deletes that AWS refuses while other objects depend on the target, and
what a delete releases.

Amazon EC2 DeleteSecurityGroup
(https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_DeleteSecurityGroup.html):
"If you attempt to delete a security group that is associated with an instance
or network interface, is referenced by another security group in the same VPC,
or has a VPC association, the operation fails with DependencyViolation."
moto 5.2.5 deleted the group regardless, leaving rules that name a group that
no longer exists. A group in use by an Elastic Load Balancing v2 load balancer
is in use by the load balancer's network interfaces, so it counts as well.
"""

from moto.ec2.exceptions import EC2ClientError
from moto.ec2.responses import EC2Response
from moto.elbv2.models import elbv2_backends

from patching import extend


def _dependents(response, group_id):
    backend = response.ec2_backend
    for groups in backend.groups.values():
        for group in groups.values():
            if group.id == group_id:
                continue
            for rule in list(group.ingress_rules) + list(group.egress_rules):
                if (rule.source_group or {}).get("GroupId") == group_id:
                    yield f"security group {group.id}"
    for eni in backend.enis.values():
        if any(getattr(g, "id", g) == group_id for g in eni.group_set):
            yield f"network interface {eni.id}"
    elbv2 = elbv2_backends[response.current_account][response.region]
    for lb in elbv2.load_balancers.values():
        if group_id in (lb.security_groups or []):
            yield f"load balancer {lb.name}"


@extend(EC2Response, "delete_security_group")
def delete_security_group(original, self):
    group_id = self._get_param("GroupId")
    if group_id:
        dependent = next(_dependents(self, group_id), None)
        if dependent is not None:
            raise EC2ClientError("DependencyViolation", f"resource {group_id} has a dependent object ({dependent})")
    return original(self)


# Amazon EC2 ReleaseAddress
# (https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_ReleaseAddress.html):
# "you must use DisassociateAddress to disassociate the Elastic IP address
# before you can release it. Otherwise, Amazon EC2 returns an error
# (InvalidIPAddress.InUse)." moto released an address still in use (by a NAT
# gateway, for one).


@extend(EC2Response, "release_address")
def release_address(original, self):
    allocation = self._get_param("AllocationId")
    ip = self._get_param("PublicIp")
    for eip in self.ec2_backend.addresses:
        if (allocation and eip.allocation_id == allocation) or (ip and eip.public_ip == ip):
            if eip.eni is not None or eip.instance is not None:
                raise EC2ClientError("InvalidIPAddress.InUse", f"Address {eip.public_ip} is in use.")
    return original(self)


# Amazon EC2 DeleteNatGateway
# (https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_DeleteNatGateway.html):
# "Deleting a public NAT gateway disassociates its Elastic IP address, but does
# not release the address from your account", and the gateway's network
# interface goes with it. moto kept both the association and the interface.


@extend(EC2Response, "delete_nat_gateway")
def delete_nat_gateway(original, self):
    answer = original(self)
    gateway = self.ec2_backend.nat_gateways.get(self._get_param("NatGatewayId"))
    eni = getattr(gateway, "_eni", None)
    if eni is not None:
        for eip in list(self.ec2_backend.addresses):
            if eip.eni is eni:
                eip.eni = None
                eip.instance = None
                eip.association_id = None
        self.ec2_backend.enis.pop(eni.id, None)
        gateway._eni = None
    return answer


# Amazon EC2 DeleteSubnet
# (https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_DeleteSubnet.html):
# "You must terminate all running instances in the subnet before you can
# delete the subnet" — any network interface in it (a NAT gateway's, a load
# balancer's) is a dependency: DependencyViolation. moto deleted the subnet
# under its NAT gateway and load balancers.


@extend(EC2Response, "delete_subnet")
def delete_subnet(original, self):
    subnet_id = self._get_param("SubnetId")
    backend = self.ec2_backend
    users = [f"network interface {e.id}" for e in backend.enis.values() if getattr(e.subnet, "id", None) == subnet_id]
    users += [f"NAT gateway {n.id}" for n in backend.nat_gateways.values() if n.subnet_id == subnet_id and n.state not in ("deleted", "deleting")]
    elbv2 = elbv2_backends[self.current_account][self.region]
    users += [f"load balancer {lb.name}" for lb in elbv2.load_balancers.values() if any(s.id == subnet_id for s in lb.subnets)]
    if users:
        raise EC2ClientError("DependencyViolation", f"The subnet '{subnet_id}' has dependencies and cannot be deleted ({users[0]}).")
    answer = original(self)
    # A deleted subnet is no longer associated with any route table (moto kept the associations).
    for table in backend.route_tables.values():
        for association, subnet in list(table._associations.items()):
            if subnet == subnet_id:
                del table._associations[association]
    return answer


# Amazon EC2 DetachInternetGateway
# (https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_DetachInternetGateway.html):
# "The VPC must not contain any running instances with Elastic IP addresses or
# public IPv4 addresses" — DependencyViolation ("Network vpc-… has some mapped
# public address(es)"). An associated Elastic IP (a NAT gateway's) or an
# internet-facing load balancer in the VPC counts. moto detached regardless.


@extend(EC2Response, "detach_internet_gateway")
def detach_internet_gateway(original, self):
    vpc_id = self._get_param("VpcId")
    backend = self.ec2_backend
    mapped = any(
        eip.eni is not None and getattr(eip.eni.subnet, "vpc_id", None) == vpc_id for eip in backend.addresses
    )
    elbv2 = elbv2_backends[self.current_account][self.region]
    mapped = mapped or any(lb.vpc_id == vpc_id and (lb.scheme or "internet-facing") == "internet-facing" for lb in elbv2.load_balancers.values())
    if mapped:
        raise EC2ClientError("DependencyViolation", f"Network {vpc_id} has some mapped public address(es). Please unmap those public address(es) before detaching the gateway.")
    return original(self)

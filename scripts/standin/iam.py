"""IAM additions to moto 5.2.5, following the IAM API reference
(https://docs.aws.amazon.com/IAM/latest/APIReference/).

ListGroups (API_ListGroups.html): "PathPrefix: The path prefix for filtering
the results. For example, the prefix /division_abc/subdivision_xyz/ gets all
groups whose path starts with /division_abc/subdivision_xyz/." moto 5.2.5
ignored the parameter and listed every group.

DeleteGroup (API_DeleteGroup.html): "The group must not contain any users or
have any attached policies." and DeleteConflict: "The request was rejected
because it attempted to delete a resource that has attached subordinate
entities." AWS refuses while the group has members, inline policies or
attached managed policies; moto 5.2.5 deleted the group with them.

AddClientIDToOpenIDConnectProvider and RemoveClientIDFromOpenIDConnectProvider
(API_AddClientIDToOpenIDConnectProvider.html,
API_RemoveClientIDFromOpenIDConnectProvider.html) are missing from moto 5.2.5.
Both are idempotent ("does not fail or return an error if you add an existing
client ID" / "try to remove a client ID that does not exist"), answer
NoSuchEntity for an unknown provider, and take a client ID of 1 to 255
characters; a provider holds at most 100 client IDs.
"""

from moto.core.responses import ActionResult, EmptyResult
from moto.iam.exceptions import DeleteConflictException, LimitExceededException, ValidationError
from moto.iam.responses import IamResponse

from patching import extend, operation


@extend(IamResponse, "list_groups")
def list_groups(original, self):
    prefix = self._get_param("PathPrefix") or "/"
    groups = [g for g in self.backend.list_groups() if g.path.startswith(prefix)]
    return ActionResult({"Groups": groups, "IsTruncated": False})


@extend(IamResponse, "delete_group")
def delete_group(original, self):
    name = self._get_param("GroupName")
    group = self.backend.get_group(name)
    if group.users:
        raise DeleteConflictException("Cannot delete entity, must remove users from group first.")
    if group.policies or group.managed_policies:
        raise DeleteConflictException("Cannot delete entity, must delete policies first.")
    return original(self)


def _client_id(self):
    client_id = self._get_param("ClientID") or ""
    if not 1 <= len(client_id) <= 255:
        raise ValidationError("1 validation error detected: Value at 'clientID' failed to satisfy constraint: Member must have length between 1 and 255")
    return client_id


@operation(IamResponse)
def add_client_id_to_open_id_connect_provider(self):
    provider = self.backend.get_open_id_connect_provider(self._get_param("OpenIDConnectProviderArn"))
    client_id = _client_id(self)
    if client_id not in provider.client_id_list:
        if len(provider.client_id_list) >= 100:
            raise LimitExceededException("Cannot exceed quota for ClientIdsPerOpenIdConnectProvider: 100")
        provider.client_id_list.append(client_id)
    return EmptyResult()


@operation(IamResponse)
def remove_client_id_from_open_id_connect_provider(self):
    provider = self.backend.get_open_id_connect_provider(self._get_param("OpenIDConnectProviderArn"))
    client_id = _client_id(self)
    if client_id in provider.client_id_list:
        provider.client_id_list.remove(client_id)
    return EmptyResult()

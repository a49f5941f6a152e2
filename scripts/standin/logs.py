"""CloudWatch Logs additions to moto 5.2.5, following the CloudWatch Logs API
reference (https://docs.aws.amazon.com/AmazonCloudWatchLogs/latest/APIReference/).

DescribeLogGroups (API_DescribeLogGroups.html), `logGroupIdentifiers`: "Use
this array to filter the list of log groups returned. If you specify this
parameter, the only other filter that you can choose to specify is
includeLinkedAccounts." Outside a monitoring account "you can specify only
log group names in the same account"; the member pattern also admits ARNs,
which name the group after `log-group:`. One to 50 identifiers. moto 5.2.5
ignored the parameter and listed every group.
"""

import json

from moto.logs.exceptions import InvalidParameterException
from moto.logs.responses import LogsResponse

from patching import extend


def _group_name(identifier):
    # arn:aws:logs:region:account:log-group:NAME[:*]
    if identifier.startswith("arn:") and ":log-group:" in identifier:
        name = identifier.split(":log-group:", 1)[1]
        return name[:-2] if name.endswith(":*") else name
    return identifier


@extend(LogsResponse, "describe_log_groups")
def describe_log_groups(original, self):
    identifiers = self._get_param("logGroupIdentifiers")
    if identifiers is None:
        return original(self)
    if not 1 <= len(identifiers) <= 50:
        raise InvalidParameterException(constraint="Member must have length between 1 and 50", parameter="logGroupIdentifiers", value=identifiers)
    for other in ("logGroupNamePrefix", "logGroupNamePattern", "logGroupClass"):
        if self._get_param(other) is not None:
            raise InvalidParameterException(f"logGroupIdentifiers cannot be combined with {other}: the only other filter allowed is includeLinkedAccounts.")
    names = {_group_name(i) for i in identifiers}
    groups = [g for name, g in sorted(self.logs_backend.groups.items()) if name in names]
    return json.dumps({"logGroups": [g.to_describe_dict() for g in groups]})

"""CloudTrail additions to moto 5.2.5, following the AWS CloudTrail API
reference (https://docs.aws.amazon.com/awscloudtrail/latest/APIReference/).
"""

import json

from moto.cloudtrail.responses import CloudTrailResponse as Response
from moto.core.exceptions import JsonRESTError

from patching import extend


class TrailAlreadyExistsException(JsonRESTError):
    code = 400

    def __init__(self, name, account):
        super().__init__("TrailAlreadyExistsException", f"Trail {name} already exists for customer: {account}")


@extend(Response, "create_trail")
def create_trail(original, self):
    # "This exception is thrown when the specified trail already exists":
    # moto replaced the existing trail (its selectors, status and settings).
    name = self._get_param("Name")
    if name in self.cloudtrail_backend.trails:
        raise TrailAlreadyExistsException(name, self.current_account)
    return original(self)


@extend(Response, "delete_trail")
def delete_trail(original, self):
    # Name is "the name or the CloudTrail ARN of the trail"; an unknown one is
    # TrailNotFoundException. moto deleted by name only and answered success
    # for an ARN without deleting anything; the trail's tags go with it.
    backend = self.cloudtrail_backend
    trail = backend.get_trail(self._get_param("Name"))
    backend.tagging_service.delete_all_tags_for_resource(trail.arn)
    del backend.trails[trail.trail_name]
    return json.dumps({})

"""ECR additions to moto 5.2.5, following the Amazon ECR API reference
(https://docs.aws.amazon.com/AmazonECR/latest/APIReference/).
"""

from moto.ecr.models import Repository

_update_scanning = Repository._update_image_scanning_configuration


def _update_image_scanning_configuration(self, image_scanning_configuration=None):
    # ImageScanningConfiguration.scanOnPush is optional and false when omitted,
    # so `{}` turns scanning on push off (moto ignored an empty configuration,
    # which is what SDKs that leave out false members send).
    if image_scanning_configuration is not None:
        image_scanning_configuration = {"scanOnPush": bool(image_scanning_configuration.get("scanOnPush", False))}
    _update_scanning(self, image_scanning_configuration)


Repository._update_image_scanning_configuration = _update_image_scanning_configuration

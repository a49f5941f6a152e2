"""ECR additions to moto 5.2.5, following the Amazon ECR API reference
(https://docs.aws.amazon.com/AmazonECR/latest/APIReference/).
"""

from moto.ecr import policy_validation as _lifecycle
from moto.ecr.exceptions import InvalidParameterException
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


# Lifecycle policies with ECR's archive storage class, as the lifecycle policy
# properties reference lists them
# (https://docs.aws.amazon.com/AmazonECR/latest/userguide/lifecycle_policy_parameters.html):
# the action `transition` with `targetStorageClass` `archive` (required for
# it), the selection's `storageClass` (`standard`, or `archive`, required and
# only allowed with `sinceImageTransitioned`) and the count types
# `sinceImagePulled` and `sinceImageTransitioned`, which need `countUnit` as
# `sinceImagePushed` does. Archived images have a 90-day minimum storage
# duration, and a policy may not delete them sooner
# (https://docs.aws.amazon.com/AmazonECR/latest/userguide/archive-image.html).
# moto 5.2.5 knew only `expire`.
_lifecycle.VALID_ACTION_TYPE_VALUES = {"expire", "transition"}
_lifecycle.VALID_ACTION_PROPERTIES = {"type", "targetStorageClass"}
_lifecycle.VALID_SELECTION_PROPERTIES = {*_lifecycle.VALID_SELECTION_PROPERTIES, "storageClass"}
_lifecycle.VALID_SELECTION_COUNT_TYPE_VALUES = {"imageCountMoreThan", "sinceImagePushed", "sinceImagePulled", "sinceImageTransitioned"}
_ARCHIVE_MINIMUM_DAYS = 90
_validate_rules = _lifecycle.EcrLifecyclePolicyValidator._validate_rule_top_properties


def _lifecycle_error(detail):
    return InvalidParameterException(_lifecycle.EcrLifecyclePolicyValidator.INVALID_PARAMETER_ERROR_MESSAGE + detail + "'")


def _validate_storage_classes(self):
    _validate_rules(self)
    for rule in self._rules:
        action, selection = rule["action"], rule["selection"]
        count_type = selection["countType"]
        if action["type"] == "transition":
            if action.get("targetStorageClass") != "archive":
                raise _lifecycle_error('targetStorageClass is required for a transition and must be "archive"')
        elif "targetStorageClass" in action:
            raise _lifecycle_error("targetStorageClass is only allowed with a transition action")
        storage = selection.get("storageClass", "standard")
        if count_type == "sinceImageTransitioned":
            if selection.get("storageClass") != "archive":
                raise _lifecycle_error('storageClass "archive" is required with countType sinceImageTransitioned')
            if action["type"] != "expire":
                raise _lifecycle_error("images selected from the archive storage class can only expire")
            if selection["countNumber"] < _ARCHIVE_MINIMUM_DAYS:
                raise _lifecycle_error(f"archived images have a minimum storage duration of {_ARCHIVE_MINIMUM_DAYS} days")
        elif storage != "standard":
            raise _lifecycle_error(f'storageClass must be "standard" with countType {count_type}')
        if count_type == "imageCountMoreThan":
            if "countUnit" in selection:
                raise _lifecycle_error("countUnit is only allowed with a sinceImage* countType")
        elif selection.get("countUnit") != "days":
            raise _lifecycle_error(f'countUnit "days" is required with countType {count_type}')


_lifecycle.EcrLifecyclePolicyValidator._validate_rule_top_properties = _validate_storage_classes


# KMS encryption without a key of the user's uses the AWS managed key of the
# account and region, `alias/aws/ecr`, which ECR creates on first use and
# reports in `encryptionConfiguration.kmsKey`
# (https://docs.aws.amazon.com/AmazonECR/latest/APIReference/API_EncryptionConfiguration.html).
# moto 5.2.5 made up a key ARN that KMS did not know. AWS managed keys report
# `KeyManager` `AWS` in DescribeKey
# (https://docs.aws.amazon.com/kms/latest/APIReference/API_KeyMetadata.html);
# moto created the keys behind the reserved `alias/aws/*` names as CUSTOMER keys.
from moto.kms import models as _kms_models  # noqa: E402

_ECR_MANAGED_ALIAS = "alias/aws/ecr"
_generate_default_keys = _kms_models.KmsBackend._generate_default_keys


def _generate_aws_managed_keys(self, alias_name):
    key_id = _generate_default_keys(self, alias_name)
    if key_id is not None:
        self.keys[key_id].key_manager = "AWS"
    return key_id


_kms_models.KmsBackend._generate_default_keys = _generate_aws_managed_keys
if _ECR_MANAGED_ALIAS not in _kms_models.RESERVED_ALIASES:
    _kms_models.RESERVED_ALIASES.append(_ECR_MANAGED_ALIAS)

_determine_encryption = Repository._determine_encryption_config


def _determine_encryption_config(self, encryption_config=None):
    if encryption_config and encryption_config.get("encryptionType") == "KMS" and not encryption_config.get("kmsKey"):
        kms = _kms_models.kms_backends[self.account_id][self.region_name]
        key_id = kms.get_key_id_from_alias(_ECR_MANAGED_ALIAS)
        return {"encryptionType": "KMS", "kmsKey": kms.keys[key_id].arn}
    return _determine_encryption(self, encryption_config)


Repository._determine_encryption_config = _determine_encryption_config

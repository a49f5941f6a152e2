"""S3 additions to moto 5.2.5, following the Amazon S3 API reference
(https://docs.aws.amazon.com/AmazonS3/latest/API/).
"""

from moto.s3.responses import S3Response as Response

from patching import extend


# GetBucketVersioning answers a <VersioningConfiguration> document; moto's
# generic serializer named the root <GetBucketVersioningResponse>, which SDKs
# that check the root element (Rust, Go) refuse.
@extend(Response, "get_bucket_versioning")
def get_bucket_versioning(original, self):
    status, headers, body = original(self)
    if isinstance(body, bytes):
        body = body.replace(b"GetBucketVersioningResponse", b"VersioningConfiguration")
    else:
        body = body.replace("GetBucketVersioningResponse", "VersioningConfiguration")
    return status, headers, body

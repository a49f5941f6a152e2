"""moto_server with the stand-in's additions (see ADDITIONS.md).

Usage is moto_server's: python scripts/standin/server.py -H 127.0.0.1 -p PORT
Flags and MOTO_* environment variables are handled by moto itself.
"""

import sys

from moto.server import main

# Importing a service module patches moto's classes in this process.
import cloudtrail  # noqa: F401
import codebuild  # noqa: F401
import codepipeline  # noqa: F401
import dependencies  # noqa: F401
import ecr  # noqa: F401
import ecs  # noqa: F401
import elbv2  # noqa: F401
import iam  # noqa: F401
import idempotency  # noqa: F401
import logs  # noqa: F401
import s3  # noqa: F401

if __name__ == "__main__":
    main(sys.argv[1:])

"""A small boto3 client for the SeaweedFS the object-storage tests start.

Usage: s3.py ENDPOINT COMMAND [ARGS...]
  wait SECONDS      until S3 takes a write; creates the bucket on the way
  create-bucket     creates the bucket (an existing one is fine)
  list PREFIX       the keys under PREFIX, one a line, sorted by byte value
  put KEY           stores stdin as KEY
  get KEY           writes KEY's bytes to stdout
  delete KEY        deletes KEY

The bucket is $S3_BUCKET (default `sextant`); the credentials are
$S3_ACCESS_KEY and $S3_SECRET_KEY (default the harness's). Exits non-zero with
the error on stderr when a command fails.
"""

import os
import sys
import time

import boto3
import botocore.exceptions
from botocore.config import Config

PROBE_KEY = "sextant-harness-probe"


def client(endpoint, read_timeout=30):
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id=os.environ.get("S3_ACCESS_KEY", "sextant-test"),
        aws_secret_access_key=os.environ.get("S3_SECRET_KEY", "sextant-test-secret"),
        config=Config(
            s3={"addressing_style": "path"},
            connect_timeout=2,
            read_timeout=read_timeout,
            # The harness decides when to give up, not botocore's retries.
            retries={"max_attempts": 1, "mode": "standard"},
        ),
    )


def create_bucket(s3, bucket):
    try:
        s3.create_bucket(Bucket=bucket)
    except s3.exceptions.BucketAlreadyOwnedByYou:
        pass
    except botocore.exceptions.ClientError as e:
        if e.response["Error"]["Code"] not in ("BucketAlreadyExists", "BucketAlreadyOwnedByYou"):
            raise


def wait(endpoint, bucket, seconds):
    # Right after a (re)start SeaweedFS may answer listings before the volume
    # server has registered with the master, so only a write proves it ready.
    # The probe goes in the tests' bucket and is deleted at once: another
    # bucket would be another collection, whose 7 preallocated volumes would
    # take 7 of the 16 slots (-volume.max) the tests have.
    # A request SeaweedFS has taken is never given up on, however slow (the
    # first write to a bucket waits for 7 volumes to be made): a PUT abandoned
    # and retried could land after the DELETE and leave the probe behind.
    s3 = client(endpoint, read_timeout=seconds)
    deadline = time.monotonic() + seconds
    while True:
        try:
            create_bucket(s3, bucket)
            s3.put_object(Bucket=bucket, Key=PROBE_KEY, Body=b"probe")
            s3.delete_object(Bucket=bucket, Key=PROBE_KEY)
            if PROBE_KEY not in list_keys(s3, bucket, PROBE_KEY):
                return
            last = "the deleted probe is still listed"
        except Exception as e:  # noqa: BLE001 - anything means "not yet"
            last = repr(e)
        if time.monotonic() > deadline:
            sys.exit(f"S3 at {endpoint} took no write within {seconds} s: {last}")
        time.sleep(0.2)


def list_keys(s3, bucket, prefix):
    keys = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        keys.extend(item["Key"] for item in page.get("Contents", []))
    # SeaweedFS lists in directory-tree order, not byte order.
    return sorted(keys, key=lambda k: k.encode())


def main(argv):
    if len(argv) < 3:
        sys.exit(__doc__)
    endpoint, command, args = argv[1], argv[2], argv[3:]
    bucket = os.environ.get("S3_BUCKET", "sextant")
    if command == "wait":
        wait(endpoint, bucket, float(args[0]) if args else 60)
        return
    s3 = client(endpoint)
    if command == "create-bucket":
        create_bucket(s3, bucket)
    elif command == "list":
        for key in list_keys(s3, bucket, args[0] if args else ""):
            print(key)
    elif command == "put":
        s3.put_object(Bucket=bucket, Key=args[0], Body=sys.stdin.buffer.read())
    elif command == "get":
        body = s3.get_object(Bucket=bucket, Key=args[0])["Body"].read()
        sys.stdout.buffer.write(body)
    elif command == "delete":
        s3.delete_object(Bucket=bucket, Key=args[0])
    else:
        sys.exit(f"unknown command {command!r}\n{__doc__}")


if __name__ == "__main__":
    main(sys.argv)

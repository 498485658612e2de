"""Runs moto's S3 server on 127.0.0.1 for the test suite.

Prints the port once the server is up and the test bucket exists, then serves until its stdin closes:
the test process holds the other end, so the server ends with it, even after a crash.
"""
import socket
import sys

import boto3
from moto.server import ThreadedMotoServer

BUCKET = sys.argv[1] if len(sys.argv) > 1 else "quantlake-test"

with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]

server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
server.start()
boto3.client(
    "s3",
    endpoint_url=f"http://127.0.0.1:{port}",
    aws_access_key_id="test",
    aws_secret_access_key="test",
    region_name="us-east-1",
).create_bucket(Bucket=BUCKET)
print(port, flush=True)
sys.stdin.read()
server.stop()

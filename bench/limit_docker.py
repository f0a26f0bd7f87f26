"""The Docker 'raw limit': a bare docker-SDK exec_run loop in one container.

usage: limit_docker.py CONTAINER CMDS_TXT
"""
import sys

import docker

container = docker.from_env().containers.get(sys.argv[1])
for line in open(sys.argv[2]).read().splitlines():
    if line:
        code, _ = container.exec_run(["/bin/sh", "-c", line.replace("{host}", "c1")])
        if code != 0:
            sys.exit(f"{line!r} exited {code}")

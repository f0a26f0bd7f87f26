"""The local 'raw limit': subprocess.run of each command through /bin/sh, in order.

usage: limit_subprocess.py CMDS_TXT
"""
import subprocess
import sys

for line in open(sys.argv[1]).read().splitlines():
    if line:
        subprocess.run(["/bin/sh", "-c", line], check=True, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE)

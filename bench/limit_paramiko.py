"""The SSH 'raw limit': one paramiko connection and thread per host, the host's
commands run one after another on it, TCP_NODELAY set, host keys checked.

usage: limit_paramiko.py HOSTS_TSV CMDS_TXT KEY_FILE KNOWN_HOSTS
(CMDS_TXT lines may contain {host}.)
"""
import socket
import sys
import threading

import paramiko


def run_host(name, port, cmds, pkey, known_hosts, errors):
    try:
        sock = socket.create_connection(("127.0.0.1", int(port)), timeout=30)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        client = paramiko.SSHClient()
        client.load_host_keys(known_hosts)
        client.set_missing_host_key_policy(paramiko.RejectPolicy())
        client.connect("127.0.0.1", port=int(port), username="root", pkey=pkey, sock=sock,
                       allow_agent=False, look_for_keys=False, timeout=30)
        transport = client.get_transport()
        for template in cmds:
            channel = transport.open_session()
            channel.exec_command(template.replace("{host}", name))
            while channel.recv(32768):
                pass
            while channel.recv_stderr(32768):
                pass
            if channel.recv_exit_status() != 0:
                raise RuntimeError(f"{template!r} failed")
            channel.close()
        client.close()
    except Exception as exc:  # report, never hang
        errors.append(f"{name}: {exc}")


def main():
    hosts_tsv, cmds_txt, key_file, known_hosts = sys.argv[1:5]
    hosts = [line.split("\t") for line in open(hosts_tsv).read().splitlines() if line]
    cmds = [line for line in open(cmds_txt).read().splitlines() if line]
    pkey = paramiko.Ed25519Key.from_private_key_file(key_file)
    errors = []
    threads = [threading.Thread(target=run_host, args=(n, p, cmds, pkey, known_hosts, errors))
               for n, p in hosts]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        print("\n".join(errors), file=sys.stderr)
        sys.exit(1)


main()

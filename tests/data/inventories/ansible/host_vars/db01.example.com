# a host_vars file without an extension
role: primary
db_port: 6432

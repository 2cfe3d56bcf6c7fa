#!/usr/bin/env bash
# Install a PostgreSQL server for the tests that need one (tests/postgres.py).
#
# Idempotent: exits at once when a server (/usr/lib/postgresql/<N>/bin/initdb) is present.
# Otherwise installs Debian's `postgresql` package with apt-get, which needs root. Without
# root or apt-get it prints why and exits 0: the PostgreSQL tests then skip themselves.
#
# The tests never use the system cluster: each test session starts a throwaway cluster of
# its own in a temp directory. So before installing we tell postgresql-common not to create
# the default "main" cluster (a drop-in under /etc/postgresql-common/createcluster.d), and
# after installing we stop any cluster the package's post-install may have started anyway.
set -euo pipefail

have_server() {
    compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null
}

if have_server; then
    exit 0
fi

if ! bash "$(dirname "$0")/apt-install.sh" check install-postgres postgresql; then
    exit 0
fi

# No default cluster: pg_createcluster reads this directory (include_dir in createcluster.conf),
# and the server package's post-install skips creating "main" when this says false.
mkdir -p /etc/postgresql-common/createcluster.d
cat >/etc/postgresql-common/createcluster.d/50-no-main-cluster.conf <<'EOF'
# Written by qualify's tests/install-postgres.sh: its tests start throwaway clusters of
# their own, so no system cluster is created when the server package is installed.
create_main_cluster = false
EOF

bash "$(dirname "$0")/apt-install.sh" install install-postgres postgresql

# Belt and braces: stop any cluster that the post-install started (none is expected).
if command -v pg_lsclusters >/dev/null 2>&1; then
    pg_lsclusters --no-header 2>/dev/null | while read -r version cluster _port status _rest; do
        if [[ $status == online* ]]; then
            pg_ctlcluster "$version" "$cluster" stop || true
        fi
    done
fi

if ! have_server; then
    echo "install-postgres: apt-get installed postgresql but no /usr/lib/postgresql/*/bin/initdb" >&2
    exit 1
fi

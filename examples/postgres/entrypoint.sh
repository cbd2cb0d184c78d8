#!/bin/sh
# Entry point of remocal.local/examples/postgres: Debian's PostgreSQL 15
# without Debian's cluster wrappers (pg_ctlcluster needs Perl), so the image
# stays a handful of files. Only dash builtins are used: the image has no
# coreutils.
#
# First start: initdb into $PGDATA, a fresh subdirectory of the data volume
# (initdb refuses a directory it cannot own and chmod, such as the
# volume's root). The superuser is "postgres" with $POSTGRES_PASSWORD;
# connections over the network must present it (scram-sha-256).
set -eu

: "${PGDATA:=/var/lib/postgresql/data/pgdata}"

if [ ! -s "$PGDATA/PG_VERSION" ]; then
	if [ -z "${POSTGRES_PASSWORD:-}" ]; then
		echo "postgres: POSTGRES_PASSWORD is empty: set it (e.g. from a Secret) so that clients can log in as postgres" >&2
		exit 1
	fi
	# The password goes through a pipe rather than a file: there is no rm
	# to delete a file afterwards. initdb's "locale: not found" and "no
	# usable system locales were found" are expected: the image has the C
	# locale only.
	printf '%s\n' "$POSTGRES_PASSWORD" | initdb -D "$PGDATA" -U postgres --pwfile=/dev/stdin \
		--auth-local=scram-sha-256 --auth-host=scram-sha-256 --locale=C -E UTF8
	# initdb allows loopback only; clients come from other pods.
	printf '%s\n' 'host all all 0.0.0.0/0 scram-sha-256' 'host all all ::/0 scram-sha-256' >>"$PGDATA/pg_hba.conf"
fi

# Debian's default socket directory, /var/run/postgresql, does not exist
# here; /tmp is writable by anyone.
exec postgres -D "$PGDATA" -c listen_addresses='*' -c port=5432 -c unix_socket_directories=/tmp "$@"

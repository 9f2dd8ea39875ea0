#!/bin/sh
# Run once by the postgres image when the primary's data folder is first made (compose
# profile `scale`): a role the streaming replica connects as, and a pg_hba.conf line that
# lets it stream over the compose network.
set -e
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
  -v password="${REPLICATION_PASSWORD:-replicator}" <<'SQL'
CREATE ROLE replicator WITH REPLICATION LOGIN PASSWORD :'password';
SQL
echo "host replication replicator all scram-sha-256" >> "$PGDATA/pg_hba.conf"

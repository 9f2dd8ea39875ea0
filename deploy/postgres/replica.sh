#!/bin/sh
# The streaming replica of compose profile `scale`: on first start, copy the primary with
# pg_basebackup (-R: follow its WAL from then on), then run as a hot standby. Feedback to
# the primary keeps its vacuum from removing rows a dashboard's query on the replica still
# reads (without it such a query may be cancelled: a 503 the console retries).
set -e
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  until pg_isready -h db -U replicator -q; do sleep 1; done
  PGPASSWORD="${REPLICATION_PASSWORD:-replicator}" \
    pg_basebackup -h db -U replicator -D "$PGDATA" -R -X stream --checkpoint=fast
  chmod 700 "$PGDATA"
fi
exec postgres -c hot_standby_feedback=on

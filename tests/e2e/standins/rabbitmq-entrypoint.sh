#!/bin/sh
# What the official image does: started as root for the server, it gives rabbitmq its data and steps down to that user;
# then the variables docker-compose.yml sets, and the server in the foreground.
set -eu
if [ "$(id -u)" = 0 ] && [ "${1:-}" = rabbitmq-server ]; then
  find /var/lib/rabbitmq /etc/rabbitmq \! -user rabbitmq -exec chown rabbitmq:rabbitmq '{}' + 2>/dev/null || true
  exec setpriv --reuid=rabbitmq --regid=rabbitmq --init-groups "$0" "$@"
fi
cat > /etc/rabbitmq/rabbitmq.conf <<CONF
loopback_users = none
default_user = ${RABBITMQ_DEFAULT_USER:-guest}
default_pass = ${RABBITMQ_DEFAULT_PASS:-guest}
CONF
exec "$@"

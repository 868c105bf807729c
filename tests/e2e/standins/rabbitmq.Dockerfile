# Stand-in for the official rabbitmq:4.0-management, built from Debian trixie's rabbitmq-server (4.0) because CI cannot
# reach an image registry: started as root, the server in the foreground as user rabbitmq (the entrypoint steps down,
# as the official one does with gosu), logs on stdout, management plugin on, and the variables docker-compose.yml sets
# honoured as the official image does.
ARG BASE=pipeline-standin/debian:trixie
FROM ${BASE}

# The official image's rabbitmq user has UID and GID 999; the package adopts an existing user.
RUN groupadd --system --gid 999 rabbitmq \
    && useradd --system --uid 999 --gid rabbitmq --home-dir /var/lib/rabbitmq --shell /usr/sbin/nologin rabbitmq \
    && apt-get update \
    && apt-get install -y --no-install-recommends rabbitmq-server \
    && rm -rf /var/lib/apt/lists/* \
    && echo '[rabbitmq_management].' > /etc/rabbitmq/enabled_plugins \
    && chown -R rabbitmq:rabbitmq /etc/rabbitmq /var/lib/rabbitmq

COPY rabbitmq-entrypoint.sh /usr/local/bin/docker-entrypoint.sh

ENV HOME=/var/lib/rabbitmq \
    RABBITMQ_LOGS=-
EXPOSE 4369 5672 15672 25672
ENTRYPOINT ["/usr/local/bin/docker-entrypoint.sh"]
CMD ["rabbitmq-server"]

# Stand-in for the official python:3.13-slim-trixie, built from Debian trixie's own packages because CI cannot
# reach an image registry: python and pip on PATH (pip in /usr/local, no Debian Python packages beside the standard
# library), pip allowed to install, the build machine's CA bundle.
ARG BASE=pipeline-standin/debian:trixie
FROM ${BASE}

RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 python3-pip-whl \
    && rm -rf /var/lib/apt/lists/* /usr/lib/python3*/EXTERNALLY-MANAGED \
    && ln -s /usr/bin/python3 /usr/local/bin/python \
    && wheel="$(echo /usr/share/python-wheels/pip-*.whl)" \
    && python3 "$wheel/pip" install --no-cache-dir --no-index "$wheel"

COPY ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
ENV LANG=C.UTF-8 \
    PIP_CERT=/etc/ssl/certs/ca-certificates.crt

CMD ["python3"]

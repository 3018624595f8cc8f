# The Airflow image for the Mailforce stack: the official image plus the pinned requirements.
# Keep the tag equal to the apache-airflow pin in requirements.txt (tests/test_compose.py checks it).
FROM apache/airflow:3.3.2

# Mount points the compose file shares between services. Created here, owned by the airflow user, so
# that a fresh named volume mounted on them inherits that ownership.
USER root
RUN mkdir -p /opt/airflow/auth /opt/airflow/certs \
 && chown airflow:0 /opt/airflow/auth /opt/airflow/certs \
 && chmod 0770 /opt/airflow/auth

USER airflow
COPY requirements.txt /requirements.txt
# AIRFLOW_VERSION is set by the base image: pinning it in the same resolve makes pip fail loudly
# instead of replacing the image's Airflow when requirements.txt asks for another version.
RUN pip install --no-cache-dir "apache-airflow==${AIRFLOW_VERSION}" -r /requirements.txt

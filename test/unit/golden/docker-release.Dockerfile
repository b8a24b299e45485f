# ayna-deploy: demoapp (staging), one release's image; written from its stack config.
FROM @FROM_IMAGE@
USER 0:0
COPY --chown=0:@APP_GID@ venv @VENV_PATH@
RUN ln -s @VENV_PATH@ /opt/venv && /opt/venv/bin/python -c "import sys; print(sys.version)"
COPY --chown=0:@APP_GID@ lib /opt/ayna/demoapp/lib
COPY --chown=0:@APP_GID@ ayna-env.py /usr/local/lib/ayna-env.py
COPY --chown=0:@APP_GID@ app /app
RUN ln -s /opt/venv /app/.venv && install -d -o @APP_UID@ -g @APP_GID@ /var/lib/demoapp
WORKDIR /app
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PATH=/opt/venv/bin:/usr/local/bin:/usr/bin:/bin
LABEL ayna.project=demoapp
USER @APP_UID@:@APP_GID@
ENTRYPOINT ["/opt/venv/bin/python", "/usr/local/lib/ayna-env.py", "/run/ayna/shared/.env.staging"]

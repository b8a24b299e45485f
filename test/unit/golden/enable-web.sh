sudo -n sh -c 'systemctl enable --quiet demoapp-web.service demoapp-web.socket'
sudo -n sh -c '{ systemctl disable --now --quiet demoapp-web.service demoapp-web.socket 2>/dev/null || true; } && systemctl daemon-reload'
sudo -n sh -c 'systemctl enable --quiet demoapp-celery.service'

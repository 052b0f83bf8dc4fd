"""JupyterHub's configuration for the course (run by ``course hub start``; read ``deploy.py``).

The course's settings come from ``$COURSE_HUB_ROOT/hub/hub.json``, written by ``course hub
setup``. People log in with their Unix account (PAM); each one's JupyterLab runs as that user
from the course's shared environment, with the Jupyter configuration of their role: the
instructor's opens in the course folder with the Formgrader, a student's in their home with
the Assignments panel.
"""

import json
import os
from pathlib import Path

c = get_config()  # noqa: F821  (provided by JupyterHub)

ROOT = Path(os.environ["COURSE_HUB_ROOT"])
HUB = json.loads((ROOT / "hub" / "hub.json").read_text())
ENV = ROOT / "env"

c.JupyterHub.ip = "127.0.0.1"
c.JupyterHub.port = HUB["port"]
c.JupyterHub.hub_ip = "127.0.0.1"
c.JupyterHub.hub_port = HUB["port"] + 1
c.ConfigurableHTTPProxy.api_url = f"http://127.0.0.1:{HUB['port'] + 2}"
c.ConfigurableHTTPProxy.command = [str(ROOT / "proxy" / "node_modules" / ".bin" / "configurable-http-proxy")]
c.JupyterHub.db_url = f"sqlite:///{ROOT / 'hub' / 'jupyterhub.sqlite'}"
c.JupyterHub.cookie_secret_file = str(ROOT / "private" / "cookie_secret")
c.JupyterHub.pid_file = str(ROOT / "hub" / "jupyterhub.pid")

# Who may log in: the roster and the instructor, by their Unix password.
c.JupyterHub.authenticator_class = "pam"
c.PAMAuthenticator.open_sessions = False
c.Authenticator.allowed_users = set(HUB["students"]) | {HUB["instructor"]}
c.Authenticator.admin_users = {HUB["instructor"]}

# The course's own tooling (and its tests) reach the hub's REST API with this token.
c.JupyterHub.services = [{"name": "course", "api_token": (ROOT / "private" / "api_token").read_text().strip()}]
c.JupyterHub.load_roles = [{"name": "course", "services": ["course"],
                            "scopes": ["admin:users", "admin:servers", "tokens", "access:servers", "read:hub"]}]

# Each user's JupyterLab, as that user, from the shared environment.
c.Spawner.cmd = [str(ENV / "bin" / "jupyterhub-singleuser")]
c.Spawner.default_url = "/lab"
c.Spawner.start_timeout = 120
c.Spawner.http_timeout = 120


def _role(spawner) -> str:
    return "instructor" if spawner.user.name == HUB["instructor"] else "student"


def pre_spawn_hook(spawner):
    role = _role(spawner)
    spawner.environment.update({
        "PATH": f"{ENV / 'bin'}:/usr/local/bin:/usr/bin:/bin",
        "COURSE_DATA_DIR": str(ROOT / "data" / "mnist"),
        "JUPYTER_CONFIG_PATH": f"{ROOT / 'etc' / role}:{ROOT / 'etc' / 'common'}",
    })
    spawner.notebook_dir = HUB["course_dir"] if role == "instructor" else "~"


c.Spawner.pre_spawn_hook = pre_spawn_hook

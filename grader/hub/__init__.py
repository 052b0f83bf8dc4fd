"""The course on a JupyterHub: roster, accounts, layout, nbgrader's exchange made trustworthy.

``roster``: the class list, checked. ``accounts``: Unix users and groups. ``deploy``: the hub's
folders, environment and configuration (``course hub setup``). ``collect``: nbgrader's collect
that refuses forged submissions. ``jupyterhub_config.py``: the hub itself (``course hub start``).
"""

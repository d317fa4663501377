"""Fixtures shared by every test module. A session fixture imported into each test module separately is a
separate fixture per module (pytest registers it in that module), so each module would start its own Prefect test
server; defined here, one server serves the whole pytest process."""
from tests.helpers.flows import prefect_server  # noqa: F401

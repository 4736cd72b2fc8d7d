"""Root conftest: only the plugin list. Fixtures live in fixtures/, logic in rehearsal/."""

pytest_plugins = ["rehearsal.pytest_plugin", "fixtures.sim", "fixtures.rehearsal"]

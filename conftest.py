"""Root conftest: only the plugin list. Fixtures live in fixtures/, logic in rehearsal/."""

pytest_plugins = ["fixtures.plugin", "fixtures.sim", "fixtures.rehearsal"]

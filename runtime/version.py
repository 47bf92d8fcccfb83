"""The package version, in one place: pyproject.toml reads it (dynamic version), the CLI prints it,
export writes it into every model's metadata and the manifest. Here, not in cli/, so that export
and train can read it without importing the command line."""

VERSION = "0.2.0"

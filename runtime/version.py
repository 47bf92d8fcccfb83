"""The package version, in one place: pyproject.toml reads it (dynamic version), the CLI prints it,
export writes it into every model's metadata and the manifest, downloads send it. It lives in the
runtime, the layer every other one may import, so that export and train read it without the CLI."""

VERSION = "0.2.0"

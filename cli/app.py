"""The `fmnist-edge` command line: thin commands over the library; errors become one line and the
exit code that cli/exits.py's table gives their class.

Heavy packages (TensorFlow, tf2onnx, onnx) are imported inside the commands that use them, so
`classify` on a device starts fast and never loads TensorFlow.
"""

from __future__ import annotations

from typing import Annotated

import typer

from fmnist_edge import device_commands as device
from fmnist_edge import export_commands as export
from fmnist_edge import serve_command, tune_command
from fmnist_edge import train_commands as train
from fmnist_edge.exits import EXIT_OK

app = typer.Typer(
    name="fmnist-edge",
    help="Train, quantize and ship a compact Fashion-MNIST classifier to small CPU devices.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="markdown",  # reflow docstring paragraphs to the terminal width
)


def _version(show: bool) -> None:
    if show:
        from fmnist_edge import __version__

        typer.echo(f"fmnist-edge {__version__}")
        raise typer.Exit(EXIT_OK)


@app.callback()
def main_options(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """Train, quantize and ship a compact Fashion-MNIST classifier to small CPU devices."""


# The commands, in the order --help lists them: train -> export -> device, as the data flows.
app.command()(train.data)
app.command("fetch-photos")(train.fetch_photos_cmd)
app.command()(train.train)
app.command()(tune_command.tune)
app.command("export")(export.export_cmd)
app.command()(export.evaluate)
app.command(help=device.CLASSIFY_HELP)(device.classify)
app.command("evaluate-photos")(device.evaluate_photos)
app.command(help=device.BENCH_HELP)(device.bench)
app.command(help=device.SELFTEST_HELP)(device.selftest)
app.command()(device.doctor)
app.command(help=serve_command.SERVE_HELP)(serve_command.serve)  # Starlette loads only when it runs

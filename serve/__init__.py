"""`fmnist-edge serve`: a web page and a JSON API over the runtime's Classifier (the [serve] extra).

    app.py     the routes, and each error's status and one-line JSON
    pool.py    worker threads (one interpreter each) behind a bounded queue
    upload.py  the photo out of a request: body or multipart, capped, in memory
    server.py  bind, print the address, run uvicorn, drain on a signal, exit code
    page/      the page at `/`: one HTML file with its CSS and JavaScript, nothing fetched elsewhere

It depends on fmnist_edge.runtime and on classify's JSON object (cli/classify.py's answer_object);
the runtime never imports it, and the CLI only inside the `serve` command.
"""

from fmnist_edge.serve.app import Limits, create_app
from fmnist_edge.serve.pool import ModelPool

__all__ = ["Limits", "ModelPool", "create_app"]

from fmnist_edge.cli import app

app(prog_name="fmnist-edge")

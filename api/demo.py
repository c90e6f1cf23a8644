"""The demo alliance seeded by `make run`."""
from __future__ import annotations

import click
from flask import Flask


def register(app: Flask) -> None:
    @app.cli.command("seed-demo")
    def seed_demo():
        """Seed the demo alliance when the database is empty."""
        click.echo("demo seeding not yet available")

"""Developer sessions: ``nox`` runs the tests; ``nox -s lint typecheck docs bench`` the rest.

Sessions reuse their virtual environment (torch is several GB), so only the first run installs.
"""

import nox

nox.options.sessions = ["tests"]
nox.options.reuse_existing_virtualenvs = True
nox.options.default_venv_backend = "venv"


@nox.session
def tests(session: nox.Session) -> None:
    """The default suite (fast); pass -- -m slow for the slow one."""
    session.install("-e", ".[test]")
    session.run("python", "-m", "pytest", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    session.install("ruff>=0.6")
    session.run("ruff", "check", "zoo", "plugins", "tests", "benchmarks", "examples", "noxfile.py")


@nox.session
def typecheck(session: nox.Session) -> None:
    session.install("-e", ".", "mypy>=1.10")
    session.run("mypy", "zoo")


@nox.session
def docs(session: nox.Session) -> None:
    """Check the docs (every hook documented, README commands current) and build the site
    (mkdocs.yml, API reference from docstrings) with warnings as errors."""
    session.install("-e", ".[test,docs]")
    session.run("python", "-m", "pytest", "-n0", "tests/test_docs.py", "tests/test_docs_site.py")  # addopts: -n auto
    session.run("mkdocs", "build", "--strict")


@nox.session
def bench(session: nox.Session) -> None:
    """The published benchmark (quick preset, 3 seeds, all built-in models)."""
    session.install("-e", ".")
    session.run("python", "benchmarks/run_published.py", *session.posargs)

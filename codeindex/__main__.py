"""`python -m codeindex` runs the CLI."""

from codeindex.cli import main

if __name__ == "__main__":
    raise SystemExit(main())

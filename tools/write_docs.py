"""Write the generated pages of docs/: python tools/write_docs.py (tests/test_settings.py fails while one is stale)."""

from __future__ import annotations

from pathlib import Path

from distil.defaults import settings_page

DOCS = Path(__file__).resolve().parents[1] / "docs"


def main() -> None:
    (DOCS / "settings.md").write_text(settings_page() + "\n")
    print(f"written {DOCS / 'settings.md'}")


if __name__ == "__main__":
    main()

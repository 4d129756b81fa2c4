"""Where the package's own data lives: code tables and rules (``mappings/``) and the XSDs
(``schemas/``). Both ship inside the package, so an installed wheel finds them from any
working directory; a deployment may point ``ADAPTER_MAPPINGS_DIR`` at a copy of its own.
"""

from __future__ import annotations

from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
MAPPINGS_DIR = PACKAGE_DIR / "mappings"
SCHEMAS_DIR = PACKAGE_DIR / "schemas"

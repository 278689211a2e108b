"""How every benchmark hands over its report: printed, and written where `--out` says."""

import json
from pathlib import Path
from typing import Any, Dict, Optional


def publish(report: Dict[str, Any], out: Optional[Path]) -> None:
    """Prints the report as indented JSON and writes the same text to ``out`` when given."""
    text = json.dumps(report, indent=2)
    print(text)
    if out:
        out.write_text(text + "\n", encoding="utf-8")

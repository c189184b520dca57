"""The one rich console every command prints through.

Markup is off: printed values (method labels like `ravl[algo.eta=0.5]`, error reasons, file paths) often
hold square brackets, which rich would otherwise swallow as style tags. Piped output (logs, CI) is wide,
so tables do not fold into unreadable columns.
"""

import sys

from rich.console import Console

console = Console(markup=False) if sys.stdout.isatty() else Console(markup=False, width=200)

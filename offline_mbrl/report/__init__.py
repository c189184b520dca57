"""Reports: rliable statistics over runs, tables, figures, Markdown and HTML."""

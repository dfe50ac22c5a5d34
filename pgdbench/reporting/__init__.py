"""Reports: loading results files, the studies' claims checked, figures and the Markdown summary."""

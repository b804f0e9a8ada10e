"""Entry points of the web deployable: the HTML pages and their form handlers."""

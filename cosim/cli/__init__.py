"""The `cosim` command line: parse, call the API, format. No model logic lives here."""

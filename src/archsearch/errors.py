"""User-facing errors: the CLI prints them as one line and exits non-zero."""


class ArchsearchError(Exception):
    """A problem with the user's input (config, data, files) rather than a bug."""


class ConfigError(ArchsearchError):
    pass


class DataError(ArchsearchError):
    pass


class CheckpointError(ArchsearchError):
    pass


class GenotypeError(ArchsearchError):
    pass


class DivergenceError(ArchsearchError):
    """A loss or gradient became NaN/inf: the run stops instead of writing garbage."""


class RunDirError(ArchsearchError):
    """A run directory holds something else than the run asked for: refused before anything is written."""

"""Errors that describe bad input; the CLI prints them as one line and exits with code 2."""


class TripletnetError(Exception):
    """Base class for errors caused by the user's input (files, options, arrays)."""


class DataFileError(TripletnetError, ValueError):
    """A dataset file is missing, truncated, corrupt or fails its md5 check."""


class RunFolderError(TripletnetError, ValueError):
    """A run folder is missing, incomplete, or would be overwritten."""

"""A module whose body raises, for the bad-input catalogue (``--model nets_raising_at_import:build``)."""

raise RuntimeError("this module refuses to be imported")

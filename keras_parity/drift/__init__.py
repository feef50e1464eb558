"""Drift across library releases: a matrix of pinned cells, a history in golden/drift/, a report, bisect."""

"""The investigator's workbench, `archiver serve` (issue 13): a web interface on the archive that is safe with hostile
evidence. Imported only by `archiver serve`; nothing here captures, and every page reads through the same services
the CLI uses."""
